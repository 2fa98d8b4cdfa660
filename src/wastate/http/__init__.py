"""The seed-000 HTTP service (`wastate serve`): FastAPI over a wastate store.

Needs the `http` extra (`pip install 'wastate[http]'`). `create_app(store)` builds the
application for a store you own; `app_factory()` is uvicorn's factory (`uvicorn --factory
wastate.http:app_factory`), one store per worker process.
"""

from wastate.http.app import app_factory, create_app, prepare_schema
from wastate.http.config import HttpConfig
from wastate.http.errors import ApiError, ErrorBody

__all__ = ["ApiError", "ErrorBody", "HttpConfig", "app_factory", "create_app", "prepare_schema"]
