"""The report's one inline style sheet (print CSS: one section per page)."""

from __future__ import annotations

__all__ = ["CSS"]

CSS = """
body{font-family:"DejaVu Sans",Verdana,sans-serif;font-size:13px;color:#1b1b1b;margin:0;
 display:flex}
nav{position:sticky;top:0;align-self:flex-start;height:100vh;overflow:auto;width:15em;
 background:#f4f6f8;border-right:1px solid #d0d7de;padding:1em;box-sizing:border-box}
nav ol{padding-left:1.2em;margin:0}nav li{margin:.3em 0}
main{flex:1;padding:1em 2em;max-width:72em}
h1{font-size:1.6em;margin:.2em 0}h2{border-bottom:2px solid #1f618d;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1em}
th,td{border:1px solid #d0d7de;padding:.25em .45em;text-align:left;vertical-align:top}
th{background:#eef2f6}table.kv th{width:14em}
.blocks{color:#fff;background:#c0392b;font-weight:bold;white-space:nowrap}
.review{background:#fdebd0;white-space:nowrap}
.fail{color:#c0392b;font-weight:bold}.pass{color:#1e8449}.border{color:#b9770e}
.banner{background:#c0392b;color:#fff;font-weight:bold;text-align:center;padding:.4em;
 letter-spacing:.1em}
.sig{color:#34495e;font-size:.92em}.muted{color:#666}
.empty{background:#e9f7ef;padding:.6em;border-left:4px solid #1e8449}
figure{margin:1em 0;page-break-inside:avoid}figure svg{max-width:100%;height:auto}
figcaption{color:#555;font-size:.9em}code{font-size:.92em;word-break:break-all}
section{page-break-before:always}section#header{page-break-before:auto}
@media print{nav{display:none}body{display:block}}
"""
