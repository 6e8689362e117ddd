#!/usr/bin/env bash
# report_screenshot.sh -- build the Snakemake report of the tiny scenario and take screenshots
# of it in headless Chromium, to check by eye that every figure and caption renders.
#
#   tests/report_screenshot.sh [WORKDIR] [OUTDIR]
#
# WORKDIR (default /tmp/promptscape-report): a run of tests/data/tiny/config.yaml; it is run
# (snakemake --cores 2) if results/ is missing there. The report is (re)built as
# WORKDIR/report.html (snakemake --report). OUTDIR (default WORKDIR/screenshots) receives:
#   report-home.png       the report's start page (workflow description and rule graph)
#   report-table.png      the results table of bernmix's reliability figure (its labels:
#                         config, experiment, figure)
#   report-figure.png     the landscape figure of bernmix with its caption ("Description")
#   report-figure-<experiment>-<figure>.png   every other figure, the same way (ALL=1)
# The report is a single-page app without URLs for its views, so each view is opened by a
# copy of report.html with a script that calls the app's own setView() after loading.
#
# Needs: python with the project (or $PYTHON), and Chromium: `apt-get install -y chromium`
# (Debian; or set CHROMIUM=/path/to/chrome).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORKDIR="$(mkdir -p "${1:-/tmp/promptscape-report}" && cd "${1:-/tmp/promptscape-report}" && pwd)"
OUTDIR="${2:-$WORKDIR/screenshots}"
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
CONFIG="$REPO/tests/data/tiny/config.yaml"
CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
[ -n "$CHROMIUM" ] || { echo "chromium not found: apt-get install -y chromium (or set CHROMIUM)" >&2; exit 1; }
mkdir -p "$OUTDIR"

sm() { timeout -k 10 1200 "$PYTHON" -m snakemake --snakefile "$REPO/Snakefile" --directory "$WORKDIR" \
           --configfile "$CONFIG" --cores 2 "$@"; }
if [ ! -d "$WORKDIR/results" ]; then
    echo "[screenshot] running the tiny scenario in $WORKDIR"
    sm > "$WORKDIR/run.log" 2>&1 || { tail -n 40 "$WORKDIR/run.log" >&2; exit 1; }
fi
t0=$(date +%s.%N)
sm --report "$WORKDIR/report.html" > "$WORKDIR/report.log" 2>&1 || { tail -n 40 "$WORKDIR/report.log" >&2; exit 1; }
echo "[screenshot] report built in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s: $WORKDIR/report.html ($(du -h "$WORKDIR/report.html" | cut -f1))"

PROFILE="$(mktemp -d /tmp/promptscape-chromium.XXXXXX)"
trap 'rm -rf "$PROFILE" "$WORKDIR"/.view-*.html' EXIT

# view NAME JS: screenshot of report.html after running JS (empty: the start page)
view() {
    local name=$1 js=$2 page="$WORKDIR/.view-$1.html"
    "$PYTHON" - "$WORKDIR/report.html" "$page" "$js" <<'EOF'
import sys
html = open(sys.argv[1], encoding="utf-8").read()
script = ("<script>window.addEventListener('load', function () { setTimeout(function () {"
          + sys.argv[3] + "}, 300); });</script>")
i = html.rfind("</body>")
open(sys.argv[2], "w", encoding="utf-8").write(html[:i] + script + html[i:])
EOF
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$PROFILE" --hide-scrollbars --window-size=1600,1100 \
        --virtual-time-budget=10000 --screenshot="$OUTDIR/$name.png" "file://$page" \
        > "$WORKDIR/chromium.log" 2>&1 || { tail -n 20 "$WORKDIR/chromium.log" >&2; exit 1; }
    [ -s "$OUTDIR/$name.png" ] || { echo "no screenshot $OUTDIR/$name.png" >&2; exit 1; }
    echo "[screenshot] $OUTDIR/$name.png"
}
show_figure() { # JS that opens results/<experiment>/figures/<figure>.svg with its caption
    local path="results/$1/figures/$2.svg"
    echo "app.setView({navbarMode: 'resultinfo', category: '$1', subcategory: '$2', resultPath: '$path', content: 'img', contentPath: results['$path'].data_uri});"
}

view report-home ""
view report-table "app.setView({navbarMode: 'subcategory', category: 'bernmix', subcategory: 'reliability'});"
view report-figure "$(show_figure bernmix landscape)"
if [ "${ALL:-0}" = 1 ]; then
    for path in "$WORKDIR"/results/*/figures/*.svg; do
        experiment=$(basename "$(dirname "$(dirname "$path")")"); figure=$(basename "$path" .svg)
        view "report-figure-$experiment-$figure" "$(show_figure "$experiment" "$figure")"
    done
fi
