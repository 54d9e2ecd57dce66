"""The arena: one file that configures symbols, teams, their models, baselines, strategy and costs.

Adding a model or a team is a change to this file, never to code or deployment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from redblue.core.errors import RedblueError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ARENA = REPO_ROOT / "arenas" / "reference.yaml"
BASELINE_TEAM = "baseline"

_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,23}$")]


class ArenaError(RedblueError, ValueError):
    """The arena file is missing or invalid; the message says where and why."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSpec(_Frozen):
    """One model: its ``kind`` (a baseline name, or ``ludwig`` later) and parameters."""

    name: Name
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    symbols: tuple[str, ...] | None = None  # None: every arena symbol


class AccountSpec(_Frozen):
    """Where a team's orders go in live/paper runs (replays always use the simulated broker)."""

    broker: Literal["simulated", "alpaca"] = "simulated"


class TeamSpec(_Frozen):
    models: tuple[ModelSpec, ...]
    trade_with: Name | None = None  # the model whose forecasts drive orders; default: the first
    account: AccountSpec = AccountSpec()

    @model_validator(mode="after")
    def _trade_model_exists(self) -> TeamSpec:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate model names {names}")
        if self.trade_with is not None and self.trade_with not in names:
            raise ValueError(f"trade_with {self.trade_with!r} is not one of the team's models {names}")
        return self

    @property
    def trading_model(self) -> str:
        return self.trade_with or self.models[0].name


class StrategySpec(_Frozen):
    """Long when the predicted close beats the last close by ``threshold`` (a fraction), else flat."""

    threshold: Annotated[float, Field(ge=0)] = 0.001
    initial_cash: Annotated[float, Field(gt=0)] = 100_000.0
    allocation: Annotated[float, Field(gt=0)] = 30_000.0  # dollars per symbol for a new position
    allocations: dict[str, float] = Field(default_factory=dict)  # per-symbol overrides
    resize: bool = False  # re-size a held position to the allocation every day

    def allocation_for(self, symbol: str) -> float:
        return self.allocations.get(symbol, self.allocation)


class CostSpec(_Frozen):
    slippage_bps: Annotated[float, Field(ge=0)] = 5.0
    commission_per_order: Annotated[float, Field(ge=0)] = 1.0
    commission_bps: Annotated[float, Field(ge=0)] = 0.0


class Arena(_Frozen):
    name: Name
    symbols: tuple[str, ...]
    names: dict[str, str] = Field(default_factory=dict)  # display names, e.g. AAPL: Apple
    window: Annotated[int, Field(ge=1, le=5000)] = 60  # bars kept per symbol (the warm-up)
    calendar: str = "XNYS"
    baselines: tuple[ModelSpec, ...] = ()
    teams: dict[Name, TeamSpec]
    strategy: StrategySpec = StrategySpec()
    costs: CostSpec = CostSpec()

    @model_validator(mode="after")
    def _check(self) -> Arena:
        if BASELINE_TEAM in self.teams:
            raise ValueError(f"team name {BASELINE_TEAM!r} is reserved for the baselines")
        if not self.teams:
            raise ValueError("an arena needs at least one team")
        for team, models in self.all_models():
            unknown = set(models.symbols or ()) - set(self.symbols)
            if unknown:
                raise ValueError(f"{team}/{models.name} names symbols not in the arena: {sorted(unknown)}")
        return self

    def all_models(self) -> list[tuple[str, ModelSpec]]:
        """Every (team, model) pair, baselines first under the team ``baseline``."""
        pairs = [(BASELINE_TEAM, m) for m in self.baselines]
        for team, spec in sorted(self.teams.items()):
            pairs.extend((team, m) for m in spec.models)
        return pairs

    def display_name(self, symbol: str) -> str:
        return self.names.get(symbol, symbol)

    def with_symbols(self, symbols: tuple[str, ...]) -> Arena:
        """The same arena restricted to ``symbols`` (e.g. from ``--symbols``)."""
        unknown = [s for s in symbols if not _SYMBOL.match(s)]
        if unknown or not symbols:
            raise ArenaError(f"invalid symbols {unknown or symbols}: use ticker symbols such as AAPL,AMZN")
        return self.model_copy(update={"symbols": tuple(symbols)})

    def symbols_of(self, model: ModelSpec) -> tuple[str, ...]:
        """The arena symbols this model forecasts."""
        return tuple(s for s in self.symbols if model.symbols is None or s in model.symbols)


def load_arena(path: Path | str | None = None) -> Arena:
    """Read and validate an arena file; raise :class:`ArenaError` with a readable reason."""
    path = Path(path) if path else DEFAULT_ARENA
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ArenaError(f"cannot read arena file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ArenaError(f"arena file {path} is not valid YAML: {err}") from err
    try:
        return Arena.model_validate(raw)
    except ValidationError as err:
        details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arena'}: {e['msg']}" for e in err.errors())
        raise ArenaError(f"arena file {path} is invalid: {details}") from err
