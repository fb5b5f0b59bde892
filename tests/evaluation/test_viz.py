"""The per-run HTML viewer: self-contained, escaped, data intact, and (with chromium) really drawn."""

from __future__ import annotations

import json
import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from multiflow.data.chain import ProteinChain
from multiflow.data.io import read_structure
from multiflow.evaluation import viz
from multiflow.evaluation.viz import MAX_LIVE_VIEWERS, DesignView, pdb_residue_labels, render_html

CHROMIUM = Path(os.environ.get("MULTIFLOW_CHROMIUM", "/usr/bin/chromium"))
EVIL = '<script>alert("x")</script> & </b>'


class _Page(HTMLParser):
    """Collects what the tests look at: tags with their attributes and the text of each <script>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: dict | None = None
        self._text: list[str] = []
        self.h2: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script, self._text = dict(attrs), []
        self._in_h2 = self._in_h2 or tag == "h2"

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._script is not None:
            self._text.append(data)
        if self._in_h2:
            self.h2.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _data_block(page: _Page) -> dict:
    blocks = [text for attrs, text in page.scripts if attrs.get("type") == "application/json"]
    assert len(blocks) == 1
    return json.loads(blocks[0])


@pytest.fixture(scope="module")
def chain(shared_data: Path) -> ProteinChain:
    path = sorted((shared_data / "structures" / "ts50").glob("*.pdb.gz"))[0]
    return read_structure(path)[0]


@pytest.fixture(scope="module")
def design(chain: ProteinChain) -> DesignView:
    n = chain.length
    confidence = np.linspace(20.0, 99.0, n)  # every pLDDT band, N-terminus low
    motif = np.zeros(n, bool)
    motif[10:20] = True
    return DesignView.from_chain(chain, name=EVIL, metrics={"scRMSD": 1.25, "scTM": np.float32(0.9), "designable": True,
                                                           "note": "<i>&"}, confidence=confidence, motif=motif)


def test_page_is_self_contained(design: DesignView, tmp_path: Path) -> None:
    out = render_html([design], tmp_path / "designs.html", "run")
    text = out.read_text(encoding="utf-8")
    page = _parse(out)
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), f"<{tag} {key}={value!r}> loads from the network"
        if tag == "script":
            assert "src" not in attrs, "every script must be inline"
        assert tag != "link" or attrs.get("rel") != "stylesheet"
    library = (Path(viz.__file__).parents[1] / "assets" / "3Dmol-min.js").read_text(encoding="utf-8")
    assert any(body == library for _, body in page.scripts), "3Dmol.js is not inlined verbatim"
    assert "@@" not in text.replace(library, "")  # every template marker filled
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"


def test_text_is_escaped(design: DesignView, tmp_path: Path) -> None:
    out = render_html([design], tmp_path / "designs.html", title="<title>run</title>")
    text = out.read_text(encoding="utf-8")
    page = _parse(out)
    assert EVIL not in text and "<i>&" not in text and "<title>run</title>" not in text.split("</title>", 1)[1]
    assert len(page.scripts) == 3  # the data block, the library, the page logic: nothing injected
    assert "".join(page.h2).strip() == f"1. {EVIL}"  # shown to the reader exactly as given
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;/b&gt;" in text


def test_data_block_parses_and_holds_the_pdb(design: DesignView, chain: ProteinChain, tmp_path: Path) -> None:
    page = _parse(render_html([design, design], tmp_path / "designs.html", color_by="confidence"))
    data = _data_block(page)
    assert data["colorBy"] == "confidence" and data["maxLive"] == MAX_LIVE_VIEWERS < 16
    first = data["designs"][0]
    assert first["name"] == EVIL
    assert first["pdb"] == design.pdb == chain.to_pdb_string()
    assert first["confidence"] == pytest.approx(list(design.confidence))
    assert first["motif"] == list(design.motif) and sum(first["motif"]) == 10


def test_json_for_script_cannot_close_the_element() -> None:
    text = viz.json_for_script({"a": "</script><!-- & -->"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": "</script><!-- & -->"}


def test_residues_follow_the_pdb(chain: ProteinChain) -> None:
    two = [chain.select(np.arange(30)), chain.select(np.arange(30, 50)).with_chain_id("B")]
    view = DesignView.from_chain(two, motif=[two[0].residue_labels()[3], two[1].residue_labels()[0]])
    assert view.sequence == f"{two[0].sequence}/{two[1].sequence}" and view.length == 50
    assert pdb_residue_labels(view.pdb) == two[0].residue_labels() + two[1].residue_labels()
    assert np.flatnonzero(view.motif).tolist() == [3, 30]
    as_text = DesignView.from_chain(two, motif=f"{two[0].residue_labels()[3]} {two[1].residue_labels()[0]}")
    assert as_text.motif == view.motif
    from_b = DesignView.from_chain(chain, confidence="b_factors")
    assert len(from_b.confidence) == chain.length


def test_bad_input_is_refused(chain: ProteinChain, design: DesignView, tmp_path: Path) -> None:
    pdb, seq, n = chain.to_pdb_string(), chain.sequence, chain.length
    with pytest.raises(ValueError, match=f"has {n - 1} residues but the PDB text has {n}"):
        DesignView("d", pdb, seq[:-1])
    with pytest.raises(ValueError, match=rf"confidence of shape \[{n}\]"):
        DesignView("d", pdb, seq, confidence=[50.0] * (n - 1))
    with pytest.raises(ValueError, match="0-100"):
        DesignView("d", pdb, seq, confidence=[150.0] * n)
    with pytest.raises(ValueError, match="boolean mask"):
        DesignView("d", pdb, seq, motif=[1] * n)
    with pytest.raises(ValueError, match="not found"):
        DesignView.from_chain(chain, motif=["A9999"])
    with pytest.raises(TypeError, match="metric 'x'"):
        DesignView("d", pdb, seq, metrics={"x": [1, 2]})
    with pytest.raises(ValueError, match="no ATOM"):
        DesignView("d", "HEADER nothing\n", seq)
    plain = DesignView("plain", pdb, seq)
    with pytest.raises(ValueError, match="no design has a motif"):
        render_html([plain], tmp_path / "x.html", color_by="motif")
    with pytest.raises(ValueError, match="color_by"):
        render_html([plain], tmp_path / "x.html", color_by="rainbow")
    with pytest.raises(FileNotFoundError):
        render_html([plain], tmp_path / "missing" / "x.html")
    text = render_html([plain], tmp_path / "x.html").read_text(encoding="utf-8")
    assert 'value="motif"' not in text  # no motif control when no design has a motif


def test_many_designs_render_one_card_each(design: DesignView, tmp_path: Path) -> None:
    views = [DesignView(f"d{i}", design.pdb, design.sequence, {"i": i}) for i in range(40)]
    out = render_html(views, tmp_path / "many.html")
    page = _parse(out)
    hosts = [a for tag, a in page.tags if tag == "div" and "viewer" in (a.get("class") or "").split()]
    assert [int(a["data-index"]) for a in hosts] == list(range(40))
    assert len(_data_block(page)["designs"]) == 40
    render_html(views[:2], out)  # overwriting an existing page works
    assert len(_data_block(_parse(out))["designs"]) == 2


def _screenshot(html: Path, png: Path, profile: Path) -> None:
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
        "--use-angle=swiftshader", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={png}",
        "--window-size=1000,800", "--virtual-time-budget=5000", html.as_uri(),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert png.is_file(), f"chromium wrote no screenshot (exit {result.returncode}): {result.stderr[-2000:]}"


@pytest.mark.chromium
@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_chromium_draws_the_structure(chain: ProteinChain, tmp_path: Path) -> None:
    from PIL import Image

    # No motif, chain colouring: the only other saturated pixels on the page are the design link
    # and one legend swatch. Measured at 1000x800: page with the library disabled 1965 saturated
    # pixels / 36 colours (with motif text highlighted); with the cartoon drawn 15860 / 131.
    view = DesignView.from_chain(chain, metrics={"scRMSD": 1.0})
    html = render_html([view], tmp_path / "page.html", "screenshot")
    png = tmp_path / "page.png"
    _screenshot(html, png, tmp_path / "profile")
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)  # [H, W, 3]
    hi, lo = rgb.max(-1), rgb.min(-1)
    coloured = ((hi - lo) > 0.3 * np.maximum(hi, 1)) & (hi > 60)  # saturated, not near-black
    shades = {tuple(c) for c in (rgb[coloured] // 16).tolist()}
    assert coloured.sum() > 6000, f"only {coloured.sum()} coloured pixels: no structure drawn?"
    assert len(shades) > 60, f"only {len(shades)} distinct colours: a flat shape, not a lit cartoon"
    # The colour sits in one place the size of a cartoon, not spread over text: the densest
    # 200x200 px window (integral image) holds most of it.
    integral = np.pad(coloured.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # [H+1, W+1]
    w = 200
    window = integral[w:, w:] - integral[:-w, w:] - integral[w:, :-w] + integral[:-w, :-w]
    assert window.max() > 4000, f"densest {w}x{w} window holds {window.max()} coloured pixels"
