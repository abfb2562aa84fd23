"""Gate results as JUnit XML: one test case per rule, so CI systems show each gate."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from evaltune.reports.gates import GateOutcome


def render_junit(outcome: GateOutcome, suite_name: str = "evaltune.gates") -> str:
    """A ``<testsuite>`` with a ``<testcase>`` per rule and a ``<failure>`` for each failed one."""
    failures = sum(not r.passed for r in outcome.results)
    suite = ET.Element("testsuite", name=suite_name, tests=str(len(outcome.results)), failures=str(failures),
                       errors="0")
    for result in outcome.results:
        case = ET.SubElement(suite, "testcase", classname=suite_name,
                             name=f"{result.rule.metric}.{result.rule.kind}")
        if not result.passed:
            ET.SubElement(case, "failure", message=result.message).text = result.message
        else:
            ET.SubElement(case, "system-out").text = result.message
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
