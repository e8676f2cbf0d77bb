"""The ``sidewatch`` command.

Subcommands import what they need when they run, so ``sidewatch --help`` is fast and
the sidecar's commands never load the monitor's heavy dependencies.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence

from monitor.errors import CliError, ConfigError, SidewatchError


def _serve(args: argparse.Namespace) -> None:
    import uvicorn
    from pydantic import ValidationError

    from monitor.api import create_app
    from monitor.settings import MonitorSettings

    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("database_url", args.database_url))
        if v is not None
    }
    try:
        settings = MonitorSettings(**overrides)
        app = create_app(settings)
    except ValidationError as exc:
        raise CliError(f"invalid settings:\n{exc}", exit_code=2) from exc
    except ConfigError as exc:  # a setting that only the parts it configures can check
        raise CliError(f"invalid settings: {exc}", exit_code=2) from exc
    # Ingest allocates many short-lived objects per batch: collect young garbage less
    # often, and never traverse the objects loaded at start-up again.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
    )


def _migrate(args: argparse.Namespace) -> None:
    from monitor.settings import MonitorSettings
    from monitor.store import Store

    url = args.database_url or MonitorSettings().database_url
    Store(url).migrate()
    print(f"schema is up to date on {url.split('@')[-1]}")


def _accelerators(args: argparse.Namespace) -> None:
    import signal
    import threading

    from prometheus_client import CollectorRegistry, start_http_server
    from pydantic import ValidationError

    from collectors.accelerators import AcceleratorCollector, AcceleratorSettings

    try:
        settings = AcceleratorSettings()
    except ValidationError as exc:
        raise CliError(f"invalid settings:\n{exc}", exit_code=2) from exc
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    poller = settings.build()
    registry = CollectorRegistry()
    registry.register(AcceleratorCollector(poller))
    poller.start()
    server, thread = start_http_server(args.port, addr=args.host, registry=registry)
    print(f"accelerator metrics on http://{args.host}:{args.port}/metrics", flush=True)
    try:
        stop.wait()
    finally:
        server.shutdown()
        thread.join(5)
        poller.stop()


def _sidecar(args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from collectors.settings import ClientSettings
    from collectors.sidecar import Sidecar, SidecarSettings

    flags = {
        "upstream": args.upstream,
        "listen": args.listen,
        "admin_listen": args.admin_listen,
        "tap_listen": args.tap_listen,
        "model": args.model,
        "model_version": args.version,
        "variant": args.variant,
        "stage": args.stage,
        "spool_dir": args.spool_dir,
    }
    try:
        settings = SidecarSettings(**{k: v for k, v in flags.items() if v is not None})
        client = ClientSettings(**({"monitor_url": args.monitor_url} if args.monitor_url else {}))
    except ValidationError as exc:
        raise CliError(f"invalid settings:\n{exc}", exit_code=2) from exc
    Sidecar(settings, client).run()


def _quarantine(args: argparse.Namespace) -> None:
    import threading

    import orjson
    from pydantic import ValidationError

    from collectors.deliver import Delivery
    from collectors.quarantine import ADVICE, Quarantine
    from collectors.settings import ClientSettings
    from collectors.transport import HttpTransport

    quarantine = Quarantine(args.dir)
    if args.action == "list":
        held = quarantine.summary()
        if not held:
            print(f"the quarantine in {args.dir} is empty")
        for reason, n in sorted(held.items()):
            print(f"{reason:14} {n:>9} events   {ADVICE.get(reason, '')}")
        return
    if args.action == "show":
        for shown, record in enumerate(quarantine.read(args.reason)):
            if shown >= args.limit:
                break
            line: dict[str, object] = {"kind": record.kind, "reason": record.reason,
                                       "detail": record.detail, "at": record.at}  # fmt: skip
            if record.event is not None:
                event = orjson.loads(record.event)
                line |= {k: event.get(k) for k in ("event_id", "model", "model_version")}
                if args.values:  # feature values may be personal data: only when asked
                    line["event"] = event
            else:
                line["raw_bytes"] = len(record.raw or b"")
            print(orjson.dumps(line).decode())
        return
    try:
        client = ClientSettings(**({"monitor_url": args.monitor_url} if args.monitor_url else {}))
    except ValidationError as exc:
        raise CliError(f"invalid settings:\n{exc}", exit_code=2) from exc
    token = client.token.get_secret_value() if client.token else None
    transport = HttpTransport(str(client.monitor_url), token, client.timeout_seconds)
    stop = threading.Event()
    give_up = threading.Timer(args.timeout, stop.set)
    give_up.start()
    delivery = Delivery(quarantine, stop=stop, retry_max_seconds=5.0)
    try:
        result = quarantine.replay(
            lambda kind, events: delivery.deliver(transport, kind, events),  # type: ignore[arg-type]
            reason=args.reason,
        )
    finally:
        give_up.cancel()
        transport.close()
    d = delivery.stats()
    print(f"replayed={result.replayed} stored={d.stored} duplicates={d.duplicates} "
          f"quarantined_again={result.quarantined} kept={result.kept}")  # fmt: skip
    if result.kept:
        raise CliError(
            f"{result.kept} events were kept in quarantine: unreadable records, or the "
            f"monitor did not answer within {args.timeout:g} s (run replay again)",
            exit_code=1,
        )


def _report(args: argparse.Namespace) -> None:
    from pathlib import Path

    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.report import build_report
    from monitor.settings import MonitorSettings
    from monitor.store import Store

    try:
        settings = MonitorSettings()
    except ValidationError as exc:
        raise CliError(f"invalid settings:\n{exc}", exit_code=2) from exc
    url = args.database_url or settings.database_url
    store = Store(url)
    try:
        report = build_report(
            store,
            args.model,
            args.version,
            window_seconds=settings.window_seconds,
            window_start=args.window_start,
            max_rows=args.max_rows or settings.report_max_rows,
            max_features=settings.report_max_features,
        )
    except SQLAlchemyError as exc:
        raise CliError(
            f"cannot read the database at {url.split('@')[-1]}: check --database-url "
            "(or SIDEWATCH_DATABASE_URL) and run `sidewatch migrate`"
        ) from exc
    finally:
        store.close()
    out = Path(args.out or report.filename)
    out.write_text(report.html, encoding="utf-8")
    print(
        f"wrote {out}: {report.sampled_predictions} of {report.window_predictions} "
        f"predictions against {report.sampled_reference_rows} reference rows "
        f"in {report.build_seconds:.1f} s"
    )


def _demo(args: argparse.Namespace) -> None:
    from monitor.demo import run

    run(
        duration=args.duration,
        port=args.port,
        workdir=args.workdir,
        drift_after=args.drift_after,
        window_seconds=args.window_seconds,
        rate=args.rate,
        label_delay=args.label_delay,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sidewatch``."""
    parser = argparse.ArgumentParser(
        prog="sidewatch", description="Monitoring for ML models already in production."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the monitor (settings from SIDEWATCH_* variables)")
    serve.add_argument("--host", help="interface (default 127.0.0.1; others need tokens)")
    serve.add_argument("--port", type=int, help="port (default 8700)")
    serve.add_argument("--database-url", help="default sqlite:///sidewatch.db")
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.add_argument("--database-url", help="default: SIDEWATCH_DATABASE_URL")
    migrate.set_defaults(func=_migrate)

    acc = sub.add_parser(
        "accelerators",
        help="export GPU/TPU metrics (settings from SIDEWATCH_ACCELERATOR_* variables)",
    )
    acc.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    acc.add_argument("--port", type=int, default=9400, help="metrics port (default 9400)")
    acc.set_defaults(func=_accelerators)

    car = sub.add_parser(
        "sidecar",
        help="proxy a model server and capture its predictions "
        "(more settings from SIDEWATCH_SIDECAR_* variables)",
    )
    car.add_argument("--upstream", help="the model server, http://host:port")
    car.add_argument("--listen", help="proxy address (default 0.0.0.0:8081)")
    car.add_argument("--admin-listen", help="metrics and health (default 0.0.0.0:9402)")
    car.add_argument("--tap-listen", help="receive KServe payload-logger CloudEvents here")
    car.add_argument("--monitor-url", help="default: SIDEWATCH_MONITOR_URL")
    car.add_argument("--model", help="model name (default: from the request path)")
    car.add_argument("--version", help="model version (default: from the path or response)")
    car.add_argument("--variant", help="tag every captured event: shadow, or the A/B arm")
    car.add_argument("--stage", help="tag every captured event: the pipeline stage")
    car.add_argument("--spool-dir", help="default var/sidecar-spool")
    car.set_defaults(func=_sidecar)

    quarantine = sub.add_parser(
        "quarantine",
        help="list, inspect or replay the events a collector could not get stored",
    )
    quarantine.add_argument("action", choices=["list", "show", "replay"])
    quarantine.add_argument(
        "--dir",
        default="var/sidecar-spool/quarantine",
        help="the quarantine: the sidecar's is quarantine/ in its spool directory "
        "(default var/sidecar-spool/quarantine); the SDK's is SIDEWATCH_QUARANTINE_DIR",
    )
    quarantine.add_argument("--reason", help="only this reason (default: all)")
    quarantine.add_argument("--limit", type=int, default=20, help="show: most events (20)")
    quarantine.add_argument(
        "--values", action="store_true", help="show: print the events' feature values too"
    )
    quarantine.add_argument("--monitor-url", help="replay: default SIDEWATCH_MONITOR_URL")
    quarantine.add_argument(
        "--timeout", type=float, default=120.0, help="replay: seconds to wait (default 120)"
    )
    quarantine.set_defaults(func=_quarantine)

    report = sub.add_parser(
        "report", help="write the HTML drift report (Evidently) of one window to a file"
    )
    report.add_argument("--model", required=True, help="a registered model")
    report.add_argument("--version", required=True, help="one of its versions")
    report.add_argument(
        "--window-start",
        type=float,
        help="epoch seconds inside the window (default: the newest window with data)",
    )
    report.add_argument("--out", help="file to write (default: a name from model and window)")
    report.add_argument("--max-rows", type=int, help="rows sampled per side (default 5000)")
    report.add_argument("--database-url", help="default: SIDEWATCH_DATABASE_URL")
    report.set_defaults(func=_report)

    demo = sub.add_parser("demo", help="run a sample model with drifting traffic and late labels")
    demo.add_argument(
        "--duration", type=float, default=None, help="seconds (default: until Ctrl-C)"
    )
    demo.add_argument("--port", type=int, default=8700, help="monitor port (default 8700)")
    demo.add_argument("--workdir", default="var/demo", help="where the demo keeps its files")
    demo.add_argument("--drift-after", type=float, default=60.0, help="seconds before drift")
    demo.add_argument("--window-seconds", type=int, default=15, help="scoring window length")
    demo.add_argument("--rate", type=float, default=20.0, help="predictions per second")
    demo.add_argument("--label-delay", type=float, default=20.0, help="seconds labels arrive late")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sidewatch``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        args.func(args)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"sidewatch: {exc}", file=sys.stderr)
        return exc.exit_code
    except SidewatchError as exc:
        print(f"sidewatch: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
