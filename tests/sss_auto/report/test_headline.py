import json

from sss_auto.report.headline import HEADLINE, headline_html, headline_text, load_headline


def test_headline_renders_as_text_and_html_and_is_absent_without_a_file(tmp_path):
    table = {"caption": "Equal wall-clock: 5 min per run; seeds [0, 1, 2]", "columns": ["variant", "seeds", "test mean Dice"],
             "rows": [["supervised only", 3, "0.500 ± 0.020"], ["default <SSS>", 3, "0.480 ± 0.030"]]}
    path = tmp_path / "headline.json"
    path.write_text(json.dumps(table))
    loaded = load_headline(path)
    text = headline_text(loaded)
    assert text.splitlines()[0] == table["caption"]
    assert "supervised only  3      0.500 ± 0.020" in text
    page = headline_html(loaded)
    assert "default &lt;SSS&gt;" in page and "<th>test mean Dice</th>" in page
    assert load_headline(tmp_path / "missing.json") is None


def test_the_shipped_headline_has_a_row_per_variant_with_every_column():
    shipped = load_headline(HEADLINE)
    assert shipped is not None, f"{HEADLINE} ships with the package (benchmarks/ssl_benchmark.py --export-headline)"
    assert "seeds" in shipped["caption"] and len(shipped["rows"]) >= 2
    assert all(len(row) == len(shipped["columns"]) for row in shipped["rows"])
