"""``redblue serve``: the read-only JSON API and the web page, over the Redis leaderboard alone.

The only module that imports FastAPI, Starlette and uvicorn. No Kafka, no MLflow: every answer
is read from the run stores given to :func:`create_app` (Redis, or dicts in unit tests) through
:mod:`redblue.app.web.views`. Bad ids get a 4xx JSON ``{"error": ...}``; an unreachable Redis a 503.
The page (``/``) and its static files come from this package; Plotly's JavaScript comes from
the ``plotly`` Python package, so the page needs no internet. It holds no state of its own.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from redblue.app.web import views
from redblue.core.errors import RedblueError
from redblue.core.readiness import announce_ready
from redblue.core.settings import Settings
from redblue.core.store import RunStores, StoreError, StoreUnavailable

STATIC = Path(__file__).resolve().parent / "static"
Run = Annotated[str, PathParam(pattern=views.RUN_ID, description="run id")]
Team = Annotated[str, PathParam(pattern=views.NAME)]
Model = Annotated[str, PathParam(pattern=views.NAME)]
Symbol = Annotated[str, PathParam(pattern=views.SYMBOL, description="ticker, e.g. AAPL")]


class WebError(RedblueError):
    """The page cannot be served (e.g. the plotly package is missing)."""


def plotly_js() -> Path:
    """Plotly's JavaScript bundle, as shipped inside the ``plotly`` Python package."""
    spec = importlib.util.find_spec("plotly")  # finds the package without importing it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    raise WebError("plotly.min.js not found: the 'plotly' Python package is not installed")


def page(poll_seconds: float) -> str:
    """``index.html`` with the polling interval filled in."""
    return (STATIC / "index.html").read_text().replace("{{poll_seconds}}", f"{poll_seconds:g}")


def create_app(stores: RunStores, *, poll_seconds: float = 5.0) -> FastAPI:
    """The API and the page over ``stores``; the page asks for progress every ``poll_seconds``."""
    app = FastAPI(
        title="redblue",
        summary="Read-only leaderboard of redblue runs: rankings, equity curves, forecasts, orders and fills.",
        version="1",
    )
    app.add_middleware(GZipMiddleware, minimum_size=2048)
    _errors(app)
    _api(app, stores)
    html, plotly = page(poll_seconds), plotly_js()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(html)

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly_bundle() -> FileResponse:
        return FileResponse(plotly, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _api(app: FastAPI, stores: RunStores) -> None:
    memo = views.Memo()

    @app.get("/api/runs", tags=["runs"])
    def runs() -> list[dict[str, Any]]:
        """Every run (simulations and live seasons): kind, status, arena, dates, last bar."""
        return views.run_list(stores)

    @app.get("/api/runs/{run}", tags=["runs"])
    def run(run: Run) -> dict[str, Any]:
        """A run's description, arena (symbols, teams, models), model versions served and progress."""
        return views.run_detail(stores, run)

    @app.get("/api/runs/{run}/progress", tags=["runs"])
    def progress(run: Run) -> dict[str, Any]:
        """Last bar per symbol, last equity day per team, and a stamp that changes when they do."""
        return views.run_progress(stores, run)

    @app.get("/api/runs/{run}/leaderboard", tags=["leaderboard"])
    def leaderboard(run: Run, by: str = "mase") -> dict[str, Any]:
        """Every model, best first by ``by`` (any column in ``metrics``, or a CLI metric name)."""
        return views.leaderboard(stores, run, by, memo)

    @app.get("/api/runs/{run}/rankings/{metric}", tags=["leaderboard"])
    def ranking(run: Run, metric: str, top: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
        """A ranking as kept in a Redis sorted set: forecast metrics rank models, trading metrics teams."""
        return views.ranking(stores, run, metric, top)

    @app.get("/api/runs/{run}/series", tags=["forecasts"])
    def series(run: Run) -> dict[str, Any]:
        """Accuracy per team/model/symbol, with the model versions that served."""
        return views.series_list(stores, run)

    @app.get("/api/runs/{run}/series/{team}/{model}/{symbol}", tags=["forecasts"])
    def series_detail(run: Run, team: Team, model: Model, symbol: Symbol) -> dict[str, Any]:
        """Forecast against actual close for every scored day of one series, and its latest forecast."""
        return views.series_detail(stores, run, team, model, symbol)

    @app.get("/api/runs/{run}/forecasts/latest", tags=["forecasts"])
    def latest(run: Run) -> dict[str, Any]:
        """The latest forecast of every model and symbol (live: tomorrow's close)."""
        return views.latest_forecasts(stores, run)

    @app.get("/api/runs/{run}/original", tags=["forecasts"])
    def original(run: Run) -> dict[str, Any]:
        """MAE and direction per symbol and model, as the original project printed them."""
        return views.original(stores, run)

    @app.get("/api/runs/{run}/symbols/{symbol}", tags=["trading"])
    def symbol(run: Run, symbol: Symbol) -> dict[str, Any]:
        """A symbol's closes and every team's trades in it."""
        return views.symbol_detail(stores, run, symbol)

    @app.get("/api/runs/{run}/teams/{team}", tags=["trading"])
    def team(run: Run, team: Team) -> dict[str, Any]:
        """A team's trading metrics and equity curve with drawdown."""
        return views.team_detail(stores, run, team)

    @app.get("/api/runs/{run}/teams/{team}/orders", tags=["trading"])
    def orders(run: Run, team: Team) -> dict[str, Any]:
        """Every order of a team with the broker's answer (submitted, duplicate, rejected)."""
        return views.team_orders(stores, run, team)

    @app.get("/api/runs/{run}/teams/{team}/fills", tags=["trading"])
    def fills(run: Run, team: Team) -> dict[str, Any]:
        """Every fill of a team."""
        return views.team_fills(stores, run, team)


def _errors(app: FastAPI) -> None:
    """Every error is JSON ``{"error": message}``; nothing the client sends can cause a 500."""

    @app.exception_handler(views.ViewError)
    def view_error(_: Request, err: views.ViewError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(StoreError)
    def store_error(_: Request, err: StoreError) -> JSONResponse:
        status = 503 if isinstance(err, StoreUnavailable) else 502
        return JSONResponse({"error": str(err)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        return JSONResponse({"error": "invalid request: " + "; ".join(problems)}, status_code=422)

    @app.exception_handler(HTTPException)
    def http_error(_: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=err.headers)


def serve(settings: Settings, host: str, port: int, poll_seconds: float = 5.0) -> None:
    """Serve the API and the page from the configured Redis until interrupted."""
    from redblue.adapters.redis_store import RedisStores

    stores = RedisStores.from_settings(settings)
    server = uvicorn.Server(uvicorn.Config(create_app(stores, poll_seconds=poll_seconds), host=host, port=port,
                                           log_level="warning"))  # fmt: skip
    bind = server.startup

    async def startup(sockets: Any = None) -> None:
        await bind(sockets)
        if server.started:  # listening: the page answers
            announce_ready(settings.ready_file)

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    finally:
        stores.close()


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` in a background thread for the block (tests, benchmarks); yield its base URL.

    ``port`` 0 picks a free one.
    """
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="redblue-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (server.started and server.servers):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise WebError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
