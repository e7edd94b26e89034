"""`leadstream models list|promote NAME|rollback`: the champion and its challengers."""

from __future__ import annotations

import asyncio
import getpass
import json
import time
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from cli._context import settings_from
from cli._errors import require_services
from config.settings import Settings

models_app = typer.Typer(
    help="The champion model and its challengers: list them, promote one, roll back.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@models_app.command("list")
def list_models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The latest published version: every model with its rolling prequential metrics,
    and the latest champion changes."""
    settings = settings_from(ctx)
    require_services(settings, redis=True)  # the model store
    bundle = asyncio.run(_latest(settings))
    if bundle is None:
        err.print("no model published yet: run `leadstream worker` (or `leadstream backfill`)")
        raise typer.Exit(1)
    out = {
        "version": bundle.version, "champion": bundle.champion, "examples": bundle.examples,
        "models": bundle.summary(),
        "promotions": [
            {k: r[k] for k in ("action", "from_model", "to_model", "from_version", "to_version",
                               "actor", "at")}
            for r in bundle.history[-10:]
        ],
        "revenue": bundle.revenue_metrics.report("rolling") | {"deals": bundle.revenue.n_learned},
        # What sales tools received: each score from the version live when its lead arrived.
        "published_scores": {
            scope: {k: r[k] for k in ("examples", "auc", "logloss")}
            for scope in ("rolling", "overall")
            for r in [bundle.published.report(scope)]
        },
    }  # fmt: skip
    if as_json:
        print(json.dumps(out, default=str))
        return
    window = settings.models.metrics_window
    t = Table(
        title=f"model version {bundle.version}: {bundle.examples:,} labelled examples",
        caption=f"AUC, log loss, Brier: test-then-train over the last {window:,} examples"
        " (each scored before it is learned). AUC: 0.5 is chance, 1 a perfect ranking;"
        " log loss and Brier: lower is better.",
        box=box.SIMPLE_HEAD, caption_justify="left",
    )  # fmt: skip
    # The name is what `models promote NAME` needs: never cut. Role and start go under
    # it, so the long names of configured challengers still fit 80 columns.
    t.add_column("model", no_wrap=True, min_width=max(len(m["model"]) for m in out["models"]))
    for col in ("examples", "AUC", "log loss", "Brier"):
        t.add_column(col, justify="right")
    for m in out["models"]:
        role = m["role"] if m["role"] == "champion" else f"challenger since {m['since']:,}"
        t.add_row(f"{m['model']}\n[dim]{role}[/]", f"{m['examples']:,}", _f(m["auc"]),
                  _f(m["logloss"]), _f(m["brier"]))  # fmt: skip
    console.print(t)
    pub = out["published_scores"]["overall"]
    console.print(
        f"Scores published so far: ROC AUC {_f(pub['auc'])} over {pub['examples']:,} labelled"
        " leads (cold-start scores included; leadstream_published_scores_roc_auc on /metrics)"
    )
    for r in out["promotions"]:
        console.print(
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(r['at']))} {r['action']}: "
            f"{r['from_model']} → {r['to_model']} (v{r['from_version']} → v{r['to_version']}, "
            f"{r['actor']})"
        )


@models_app.command("promote")
def promote(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="the challenger to make champion (see `models list`)")
    ],
    wait: Annotated[float, typer.Option(help="seconds to wait for a running learner")] = 15.0,
) -> None:
    """Make a challenger the champion. A running learner applies it at its next snapshot;
    without one, the latest snapshot is changed and published directly."""
    _change(settings_from(ctx), "promote", name, wait)


@models_app.command("rollback")
def rollback(
    ctx: typer.Context,
    wait: Annotated[float, typer.Option(help="seconds to wait for a running learner")] = 15.0,
) -> None:
    """Undo the latest champion change: the former champion, which kept learning in shadow,
    is champion again."""
    _change(settings_from(ctx), "rollback", None, wait)


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


async def _latest(settings: Settings) -> Any:
    import redis.asyncio as aioredis

    from online_models.bundle import ModelStore

    client = aioredis.from_url(settings.redis.url)
    try:
        return await ModelStore(client, settings.redis.key_prefix).load()
    finally:
        await client.aclose()


def _change(settings: Settings, action: str, name: str | None, wait: float) -> None:
    require_services(settings, redis=True)  # the model store
    try:
        result = asyncio.run(change_champion(settings, action, name, _actor(), wait))
    except ValueError as exc:
        err.print(f"[bold red]{action} failed:[/] {exc}")
        raise typer.Exit(1) from exc
    r = result["record"]
    console.print(
        f"{r['action']}: {r['from_model']} → {r['to_model']} "
        f"(published as version {r['to_version']}, {result['by']})"
    )


async def change_champion(
    settings: Settings, action: str, name: str | None, actor: str, wait: float = 15.0
) -> dict[str, Any]:
    """Promote ``name`` or roll back; returns ``{"record": …, "by": "learner"|"command"}``.

    Raises ValueError with the reason when the change is refused.
    """
    import redis.asyncio as aioredis

    from online_models.bundle import ModelStore, apply_command

    client = aioredis.from_url(settings.redis.url)
    store = ModelStore(client, settings.redis.key_prefix)
    try:
        if await store.learner_alive():
            command_id = await store.push_command(action, name, actor)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                result = await store.result(command_id)
                if result is not None:
                    if not result["ok"]:
                        raise ValueError(result["error"])
                    return {"record": result["record"], "by": "learner"}
                await asyncio.sleep(0.2)
            raise ValueError(
                f"the learner did not apply the command within {wait:g} s; it stays queued "
                "and is applied at the learner's next snapshot (raise --wait to see it)"
            )
        bundle = await store.load()
        if bundle is None:
            raise ValueError(
                "no model published yet: run `leadstream worker` or `leadstream backfill`"
            )
        record = apply_command(bundle, {"action": action, "model": name, "actor": actor})
        await store.publish(bundle)
    finally:
        await client.aclose()
    _record(settings, record)
    return {"record": record, "by": "command"}


def _record(settings: Settings, record: dict[str, Any]) -> None:
    """Store a promotion made without a learner in ClickHouse (advisory: warn on failure)."""
    from cli._records import insert_advisory
    from online_models.records import promotion_row

    insert_advisory(settings, "model_promotions", [promotion_row(record)], err)
