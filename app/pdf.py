"""Pick lists and packing slips as PDF, for warehouse printers that take files rather than web pages.

Drawn with fpdf2 from the same values the HTML pages render (app.picking), A4 portrait. Text is set in
DejaVu Sans when the system has it (names and addresses in any script), else in the PDF core font with
characters outside Latin-1 shown as '?', so a missing font never stops a print run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

from app.picking import PackingSlip, PickList

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
CHECKBOX = "[  ]"


class _Document(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_title(title)
        self.set_creator("Orderline")
        self.set_auto_page_break(auto=True, margin=15)
        self.unicode = self._use_dejavu()
        self.family = "DejaVu" if self.unicode else "Helvetica"
        self.footer_text = title

    def _use_dejavu(self) -> bool:
        for folder in FONT_DIRS:
            regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
            if regular.exists() and bold.exists():
                self.add_font("DejaVu", "", str(regular))
                self.add_font("DejaVu", "B", str(bold))
                return True
        return False

    def text_of(self, value: object) -> str:
        text = "" if value is None else str(value)
        return text if self.unicode else text.encode("latin-1", "replace").decode("latin-1")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.family, "", 8)
        self.cell(0, 5, self.text_of(f"{self.footer_text} · page {self.page_no()}/{{nb}}"), align="R")

    def heading(self, text: str, size: int = 16) -> None:
        self.set_font(self.family, "B", size)
        self.multi_cell(0, size * 0.5, self.text_of(text), new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def line_of_text(self, text: str, *, bold: bool = False, size: int = 10) -> None:
        self.set_font(self.family, "B" if bold else "", size)
        self.multi_cell(0, 5, self.text_of(text), new_x="LMARGIN", new_y="NEXT")

    def rows(self, header: Sequence[str], rows: Sequence[Sequence[object]], widths: Sequence[int],
             *, bold_rows: frozenset[int] = frozenset()) -> None:
        self.set_font(self.family, "", 9)
        with self.table(col_widths=tuple(widths), headings_style=FontFace(emphasis="BOLD"),
                        line_height=5.5, text_align="LEFT") as table:
            table.row([self.text_of(cell) for cell in header])
            for index, values in enumerate(rows):
                style = FontFace(emphasis="BOLD") if index in bold_rows else None
                table.row([self.text_of(cell) for cell in values], style=style)


def pick_list_pdf(pick: PickList) -> bytes:
    printed = pick.generated_at.strftime("%Y-%m-%d %H:%M")
    pdf = _Document(f"Pick list {pick.location} {printed} UTC")
    pdf.add_page()
    pdf.heading(f"Pick list: {pick.location} ({pick.location_name})")
    count = len(pick.orders)
    pdf.line_of_text(f"Printed {printed} UTC · {count} order{'' if count == 1 else 's'} · {pick.total} units")
    pdf.ln(2)
    split_ids = {order.order_id for order in pick.orders if order.split}
    if not pick.bins:
        pdf.line_of_text(f"Nothing to pick at {pick.location}.")
    else:
        rows: list[list[object]] = []
        totals: set[int] = set()
        for group in pick.bins:
            bin_name = group.bin or "(no bin)"
            for line in group.lines:
                orders = ", ".join(
                    f"#{o.number} ×{o.quantity}" + (" (picked)" if o.status == "picked" else "")
                    + (" [split]" if o.order_id in split_ids else "") for o in line.orders)
                rows.append([CHECKBOX, bin_name, line.sku, line.title or "", line.quantity, orders])
            totals.add(len(rows))
            rows.append(["", f"Bin {bin_name} total", "", "", group.total, ""])
        pdf.rows(["", "Bin", "SKU", "Item", "Qty", "Orders"], rows, (8, 22, 30, 50, 12, 68),
                 bold_rows=frozenset(totals))
    split = [order for order in pick.orders if order.split]
    if split:
        pdf.ln(4)
        pdf.heading("Split orders: other items ship from another location", size=12)
        for order in split:
            elsewhere = ", ".join(f"{e.quantity}× {e.sku} from {e.location}" for e in order.elsewhere)
            who = f" ({order.customer_name})" if order.customer_name else ""
            pdf.line_of_text(f"#{order.number}{who}: {order.units} unit{'' if order.units == 1 else 's'} from "
                             f"{pick.location} here; ships separately: {elsewhere}")
    return bytes(pdf.output())


def packing_slips_pdf(slips: Sequence[PackingSlip], *, number: str) -> bytes:
    pdf = _Document(f"Packing slip #{number}")
    if not slips:
        pdf.add_page()
        pdf.heading(f"Order #{number}")
        pdf.line_of_text("Nothing ships from this location for this order.")
    for slip in slips:
        pdf.add_page()
        parcel = f" · parcel {slip.parcel} of {slip.parcels}" if slip.parcels > 1 else ""
        pdf.heading(f"Packing slip · order #{slip.number}{parcel}")
        pdf.line_of_text(f"Placed {slip.placed_at.strftime('%Y-%m-%d')}"
                         + (f" · ships from {slip.location} ({slip.location_name})" if slip.location else ""))
        pdf.ln(2)
        pdf.line_of_text("Ship to", bold=True)
        address = slip.ship_to
        lines = [slip.customer_name] if address is None else [
            address.name or slip.customer_name, address.company, address.line1, address.line2,
            " ".join(part for part in (address.postal_code, address.city) if part), address.region,
            address.country_code]
        pdf.line_of_text("\n".join(line for line in lines if line))
        pdf.ln(3)
        rows = [[CHECKBOX, item.sku or "", item.title + (f" – {item.variant_title}" if item.variant_title else ""),
                 item.quantity] for item in slip.items]
        rows.append(["", "", "Units in this parcel", slip.units])
        pdf.rows(["", "SKU", "Item", "Qty"], rows, (10, 40, 120, 20), bold_rows=frozenset({len(rows) - 1}))
        if slip.elsewhere:
            pdf.ln(3)
            pdf.line_of_text("Ships separately", bold=True)
            pdf.line_of_text(", ".join(f"{e.quantity}× {e.sku} from {e.location}" for e in slip.elsewhere))
    return bytes(pdf.output())
