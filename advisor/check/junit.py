"""JUnit XML for CI UIs: one <testsuite> per target, one <testcase> per check.

Failed checks carry <failure message=...>; "unknown" checks (not required by the policy) are
<skipped>, which CI systems show without failing the build. Each testcase has <properties>
value/limit/unit/basis so the figure is visible next to the verdict.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from advisor.check.schema import CheckReport, CheckResult


def _text(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def _testcase(suite: ET.Element, check: CheckResult, classname: str) -> None:
    case = ET.SubElement(suite, "testcase", name=check.name, classname=classname, time="0")
    props = ET.SubElement(case, "properties")
    for key in ("value", "limit", "unit", "basis", "status"):
        ET.SubElement(props, "property", name=key, value=_text(getattr(check, key)))
    if check.status == "fail":
        failure = ET.SubElement(case, "failure", message=check.message, type=check.name)
        failure.text = f"{check.target}: {check.name} failed: {check.message} (basis: {check.basis})"
    elif check.status == "unknown":
        ET.SubElement(case, "skipped", message=check.message)
    ET.SubElement(case, "system-out").text = f"{check.status}: {check.message} (basis: {check.basis})"


def to_junit(report: CheckReport) -> str:
    label = report.model.label
    root = ET.Element("testsuites", name=f"advisor check {label}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for target in report.targets:
        checks = target.checks
        counts = {"tests": len(checks), "failures": sum(c.status == "fail" for c in checks), "errors": 0,
                  "skipped": sum(c.status == "unknown" for c in checks)}
        # JUnit's schema wants the timestamp without a zone (it is UTC)
        suite = ET.SubElement(root, "testsuite", name=f"{label}@{target.target}",
                              timestamp=report.created_at[:19], time="0", **{k: str(v) for k, v in counts.items()})
        props = ET.SubElement(suite, "properties")
        for key, value in (("model", label), ("catalog_entry", report.model.id if report.model.in_catalog else ""),
                           ("target", target.target),
                           ("target_name", target.target_name), ("format", report.format),
                           ("task", report.task or ""), ("prompt_tokens", report.prompt_tokens),
                           ("new_tokens", report.new_tokens), ("batch", report.batch),
                           ("memory_basis", target.memory_basis), ("latency_basis", target.latency_basis),
                           ("report_id", report.report_id)):
            ET.SubElement(props, "property", name=key, value=_text(value))
        for check in checks:
            _testcase(suite, check, classname=f"advisor.check.{target.target}")
        for k, v in counts.items():
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
