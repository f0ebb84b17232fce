"""JUnit XML: one testcase per check, a failure per finding at or above ``--fail-on``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from igny8ctl.render.text import printable
from igny8ctl.report import NOT_TENANT_SCOPED

if TYPE_CHECKING:
    from igny8ctl.report import CheckReport


def render(report: CheckReport) -> str:
    failing = {id(f) for f in report.failing}
    suite = ET.Element(
        "testsuite", name="igny8ctl.check", tests=str(len(report.results) + len(report.skipped)),
        time=f"{report.duration_s:.3f}", timestamp=report.started_at.isoformat(timespec="seconds"),
    )
    if report.tenants:
        properties = ET.SubElement(suite, "properties")
        for tenant in report.tenants:
            ET.SubElement(properties, "property", name="tenant",
                          value=f"{tenant.slug} (id {tenant.id})")
    failures = 0
    for result in report.results:
        case = ET.SubElement(suite, "testcase", classname="igny8ctl.check", name=result.info.id,
                             time=f"{result.duration_s:.3f}")
        bad = [f for f in result.findings if id(f) in failing]
        if bad:
            failures += 1
            message = "; ".join(f"{f.count} {f.message}" for f in bad)
            worst = max(bad, key=lambda f: f.severity.rank).severity.value
            failure = ET.SubElement(case, "failure", message=message, type=worst)
            failure.text = "\n".join(
                f"{f.code}: {f.count} ({f.severity.value}) sample ids: "
                + (", ".join(map(str, f.sample)) or "-") + (f"\nfix: {result.info.fix}"
                                                            if result.info.fix else "")
                for f in bad
            )
        others = [f for f in result.findings if f.count and id(f) not in failing]
        if others:
            ET.SubElement(case, "system-out").text = "\n".join(
                f"{f.code}: {f.count} ({f.severity.value}{', baselined' if f.baselined else ''})"
                for f in others
            )
    for info in report.skipped:
        case = ET.SubElement(suite, "testcase", classname="igny8ctl.check", name=info.id,
                             time="0.000")
        ET.SubElement(case, "skipped", message=NOT_TENANT_SCOPED)
    suite.set("failures", str(failures))
    suite.set("skipped", str(len(report.skipped)))
    suite.set("errors", "0")
    for element in suite.iter():
        # XML 1.0 cannot hold most control characters: show them escaped, like a terminal.
        element.attrib = {key: printable(value) for key, value in element.attrib.items()}
        if element.text:
            element.text = "\n".join(printable(line) for line in element.text.split("\n"))
    ET.indent(suite)
    body = ET.tostring(suite, encoding="unicode")
    return f'<?xml version="1.0" encoding="utf-8"?>\n{body}\n'
