"""統計情報: counts of documents and patients within the user's scope (nanbyo.stats.counts), as a table and a chart
on screen, or as CSV (UTF-8 with BOM, or Shift_JIS) and xlsx with formulas neutralised (nanbyo.exports). Each
output is logged with what was asked, never with counts or patient data."""
from itertools import islice

from flask import Response, request
from flask_admin import expose
from flask_login import current_user

from forms.stats import StatsForm
from nanbyo import audit, jurisdiction
from nanbyo.content_rules import parse_date
from nanbyo.document_codes import SHOMAN
from nanbyo.roles import OPERATOR_ROLES
from nanbyo.stats import counts, output
from views.base import ProtectedBaseView

DOWNLOADS = {"csv": "CSV（UTF-8）", "csv_cp932": "CSV（Shift_JIS）", "xlsx": "Excel（xlsx）"}
CHART_ROWS = 30  # bars; the table has every row
SCREEN_ROWS = 2000  # a table of more rows is downloaded whole, shown in part


class StatsView(ProtectedBaseView):
    area = "stats"

    @expose("/")
    def index(self):
        operator = current_user.role in OPERATOR_ROLES
        form = StatsForm(request.args)
        form.fiscal_year.choices = [("", "（全期間）")] + [(str(y), f"{y}年度") for y in
                                                           counts.fiscal_years(current_user)]
        # Every 実施主体: those of 小慢 include those of 難病.
        form.municipality.choices = [("", "（すべて）")] + [(str(m.id), m.name) for m in
                                                          jurisdiction.authorities(SHOMAN)] if operator else []
        table, problems = None, []
        asked = "by1" in request.args
        if asked:
            wanted = self._request(form, operator, problems)
            if not problems:
                try:
                    table = counts.count(current_user, wanted)
                except counts.StatsProblem as e:
                    problems.append(str(e))
            fmt = request.args.get("format", "")
            if table is not None and fmt in DOWNLOADS:
                audit.record("stats_export", target_type="statistics", data=self._logged(wanted) | {"format": fmt})
                mimetype, extension = output.FORMATS[fmt]
                return Response(output.render(table, fmt), mimetype=mimetype, headers={
                    "Content-Disposition": f"attachment; filename=statistics.{extension}",
                    "Cache-Control": "no-store"})
            if table is not None:
                audit.record("stats_view", target_type="statistics", data=self._logged(wanted))
        chart = None
        shown = [] if table is None else list(islice((row for row in table.rows if row[-2] != counts.MASKED),
                                                     CHART_ROWS))
        if shown:  # every row masked: no chart of nothing
            chart = {"labels": [" / ".join(str(v) for v in row[:-2]) for row in shown],
                     "documents": [row[-2] for row in shown], "patients": [row[-1] for row in shown]}
        return self.render("stats/index.html", form=form, table=table, problems=problems, asked=asked,
                           screen_rows=SCREEN_ROWS,
                           operator=operator, downloads=DOWNLOADS, chart=chart, masked_label=counts.MASKED,
                           query=request.query_string.decode()), (400 if problems else 200)

    @staticmethod
    def _request(form, operator, problems) -> counts.Request:
        by = [key for key in (form.by1.data, form.by2.data, form.by3.data) if key]
        fiscal = form.fiscal_year.data or ""
        if fiscal and not fiscal.isdigit():
            problems.append("年度を選び直してください。")
        municipality = form.municipality.data or "" if operator else ""
        dates = []
        written_from = parse_date(form.written_from.data, "作成年月日（から）", dates)
        written_until = parse_date(form.written_until.data, "作成年月日（まで）", dates)
        problems += [message for _label, message in dates]
        return counts.Request(
            by=by, fiscal_year=int(fiscal) if fiscal.isdigit() else None,
            written_from=written_from, written_until=written_until,
            kind=form.kind.data or "", application_kind=form.application_kind.data or "",
            status=form.status.data or "", review_result=form.review_result.data or "",
            municipality_id=int(municipality) if municipality.isdigit() else None,
            research=bool(form.research.data), mask=bool(form.mask.data))

    @staticmethod
    def _logged(wanted) -> dict:
        """What was asked (the dimensions and filters given), for the operation log."""
        data = {"by": wanted.by}
        for key in ("fiscal_year", "kind", "application_kind", "status", "review_result", "municipality_id"):
            if getattr(wanted, key):
                data[key] = getattr(wanted, key)
        for key in ("written_from", "written_until"):
            if getattr(wanted, key):
                data[key] = getattr(wanted, key).isoformat()
        return data | {"research": wanted.research, "masked": counts.masked_for(current_user, wanted)}
