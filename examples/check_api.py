"""The gate from Python: advisor.check(...) returns a CheckReport (the same JSON as --json).

Run: python examples/check_api.py   (exit code 0 when every check passes, 1 otherwise)
"""

import advisor

report = advisor.check(
    "qwen2.5-7b",
    targets=["a10g-24gb", "l4-24gb"],       # named targets: spec-based, no torch needed
    task="summarization",
    max_latency_ms=20000,
    memory_headroom=0.15,
    license=["apache-2.0", "mit"],
    min_quality=60,
)
for result in report.results():
    print(f"{result.status:7} {result.target:10} {result.name:16} {result.message} [{result.basis}]")
print(f"{report.status.upper()}: {len(report.failed)} failed check(s)")

# advisor.check() logs nothing. To log it (run, model-version tags, alias on pass) the way the CLI
# does when a tracking URI is given:
#   from advisor.check.tracking import track
#   folder, run_id = track(report, tracking_uri="http://mlflow:5000", experiment="model-gates")
raise SystemExit(report.exit_code)
