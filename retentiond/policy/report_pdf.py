"""The sign-off report as an A4 PDF (fpdf2), rendered from the same ``Report`` as the HTML.

Every page carries the report's SHA-256 in its footer, so the page a DPO signs names the exact
content it signs for.
"""

from __future__ import annotations

from typing import Any

from retentiond.policy.report import Report, RuleReport, signoff_lines

# The core PDF fonts cover Latin-1 only: map common typography, replace anything else.
_TRANSLATE = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                            "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u00a0": " ",
                            "\u2022": "*", "\u00b7": "-"})
_BLUE = (29, 112, 184)
_RED = (212, 53, 28)


def _t(value: object) -> str:
    return str(value).translate(_TRANSLATE).encode("latin-1", "replace").decode("latin-1")


def render_pdf(report: Report) -> bytes:
    """The report as PDF bytes."""
    from fpdf import FPDF, FontFace
    from fpdf.enums import XPos, YPos

    fingerprint = report.fingerprint

    class _Pdf(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Helvetica", size=7)
            self.set_text_color(90)
            self.cell(0, 4, _t(f"Retention rules for sign-off  |  report SHA-256 {fingerprint}"
                               f"  |  page {self.page_no()} of {{nb}}"), align="C")

    pdf: Any = _Pdf(format="A4")
    pdf.set_title("Retention rules for sign-off")
    pdf.set_subject("Packs: " + ", ".join(p.name for p in report.packs))
    pdf.set_creator("retentiond")
    pdf.set_auto_page_break(True, margin=16)
    pdf.set_margins(16, 14, 16)
    width = pdf.epw

    def para(text: str, *, size: float = 9.5, style: str = "", indent: float = 0,
             color: tuple[int, int, int] = (0, 0, 0), line: float = 4.8) -> None:
        pdf.set_font("Helvetica", style, size)
        pdf.set_text_color(*color)
        pdf.set_x(pdf.l_margin + indent)
        pdf.multi_cell(width - indent, line, _t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0)

    def label(text: str) -> None:
        pdf.ln(1.2)
        para(text, size=9, style="B", color=_BLUE)

    def bullets(items: tuple[str, ...]) -> None:
        for item in items:
            pdf.set_font("Helvetica", size=9.5)
            pdf.set_x(pdf.l_margin + 2)
            pdf.cell(4, 4.8, "-")
            pdf.multi_cell(width - 6, 4.8, _t(item), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def heading(text: str) -> None:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 13)
        pdf.set_text_color(*_BLUE)
        pdf.multi_cell(width, 7, _t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_draw_color(*_BLUE)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
        pdf.ln(2)
        pdf.set_text_color(0)

    def rule_section(r: RuleReport) -> None:
        if pdf.get_y() > pdf.h - 80:
            pdf.add_page()
        pdf.ln(3)
        para(r.title, size=11.5, style="B")
        para(f"Rule {r.id}  -  category {r.category}  -  pack {r.pack}", size=8.5,
             color=(80, 80, 80))
        if r.missing_evidence:
            pdf.ln(1)
            para("NOT CHECKED AGAINST ITS SOURCE: this rule has no "
                 f"{', '.join(r.missing_evidence)}.", style="B", color=_RED)
        label("What the rule does")
        bullets((*r.plain, r.action, r.approvals))
        if r.same_category:
            label("Other rules for the same records")
            para(f"{', '.join(r.same_category)}: all apply, and the latest date wins.")
        if r.examples:
            label("Worked examples (synthetic dates, computed by retentiond)")
            pdf.set_font("Helvetica", size=8)
            pdf.set_draw_color(170)
            pdf.set_fill_color(255)
            pdf.set_text_color(0)
            with pdf.table(col_widths=(22, 30, 18, 30), text_align="LEFT", line_height=4,
                           headings_style=FontFace(emphasis="BOLD", fill_color=(235, 240, 247)),
                           padding=1) as table:
                table.row(["case", "facts", "due on", "why"])
                for ex in r.examples:
                    facts = "; ".join(f"{k} {v}" for k, v in ex.facts)
                    table.row([_t(ex.label), _t(facts), _t(ex.due_on), _t(ex.why)])
        label("Citation")
        para(r.citation)
        label("The source's words")
        if r.source_quote:
            para(f'"{r.source_quote}"', style="I", indent=4)
        else:
            para("No quotation: see the basis and what the council must decide.", style="I")
        if r.source_url:
            label("Where to read them")
            para(r.source_url, size=8.5)
        label("Basis")
        para(r.basis_label)
        label("What the council must decide locally")
        bullets(r.local_decisions)

    pdf.add_page()
    pdf.set_fill_color(*_BLUE)
    pdf.set_text_color(255)
    pdf.set_font("Helvetica", "B", 19)
    pdf.cell(0, 13, "  Retention rules for sign-off", fill=True, new_x=XPos.LMARGIN,
             new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=10)
    pdf.cell(0, 7, _t("  Packs: " + ", ".join(p.name for p in report.packs)), fill=True,
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)
    pdf.ln(3)
    para("This report sets out every rule in the packs named above: what it does in plain "
         "English, worked examples computed by retentiond itself, the source it rests on in the "
         "source's own words, how strong that source is, and what your council must decide for "
         "itself. Read every rule, change the pack where it does not fit your records or "
         "practice, produce the report again, and sign the last page.")
    pdf.ln(2)
    para("Report SHA-256 (its fingerprint, a hash of everything this report says):", style="B")
    pdf.set_font("Courier", size=9)
    pdf.cell(0, 5, fingerprint, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if report.missing_evidence:
        pdf.ln(2)
        para(f"{report.missing_evidence} rule(s) have not been checked against their source; "
             "they are marked below.", style="B", color=_RED)
    for pack in report.packs:
        heading(f"Pack {pack.name}: {pack.title}")
        if pack.description:
            para(pack.description)
        para("This pack must be signed off locally before retentiond will put it in force."
             if pack.requires_local_signoff else "This pack does not require local sign-off to "
             "be put in force; review it all the same.", style="B")
        for rule in report.rules:
            if rule.pack == pack.name:
                rule_section(rule)
    heading("Built into retentiond")
    for rule in report.rules:
        if rule.pack == "(built in)":
            rule_section(rule)

    pdf.add_page()
    heading("Sign-off")
    statement, how, *lines = signoff_lines(report)
    para(statement)
    pdf.ln(4)
    pdf.set_draw_color(80)
    for field in ("Name", "Role", "Signature", "Date"):
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(30, 14, field, border=1)
        pdf.cell(width - 30, 14, "", border=1, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(5)
    para(how)
    pdf.ln(1)
    for line in lines:
        pdf.set_font("Courier", size=8.5)
        pdf.cell(0, 4.6, _t(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    para(f"Report SHA-256: {fingerprint}", style="B", size=9)
    return bytes(pdf.output())
