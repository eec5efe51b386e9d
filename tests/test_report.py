"""Report plots and the HTML page: figure contents against NumPy, escaping, and a real browser."""

import base64
import io
import os
import re
import shutil

import matplotlib as mpl
import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from physgan.data.toy import GaussianMixture, ring8
from physgan.errors import DataError
from physgan.report.html import SummaryRow, write_report
from physgan.report.plots import (
    PARTICLE_LABELS,
    feature_histograms,
    mean_images,
    multiplicity_histogram,
    particle_histograms,
    ratio_histogram,
    toy_scatter,
    training_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _errorbar(ax):
    """(x, y, yerr) of the points drawn by the one errorbar series on ``ax`` (none at NaN)."""
    (container,) = ax.containers
    data_line, _, (bars,) = container.lines
    x, y = np.asarray(data_line.get_xdata()), np.asarray(data_line.get_ydata())
    drawn = np.isfinite(y)
    segments = [seg for seg, ok in zip(bars.get_segments(), drawn, strict=True) if ok]
    yerr = np.array([(seg[1][1] - seg[0][1]) / 2 for seg in segments])
    return x[drawn], y[drawn], yerr


def _cloud(rng, n_jets, n_particles, n_real):
    """A particle cloud whose real particles sit in eta_rel in [0.5, 1]; padding is zero."""
    cloud = np.zeros((n_jets, n_particles, 4))
    mask = np.arange(n_particles) < n_real[:, None]
    cloud[..., 0] = rng.uniform(0.5, 1.0, mask.shape)
    cloud[..., 1] = rng.uniform(-0.4, 0.4, mask.shape)
    cloud[..., 2] = rng.uniform(0.01, 0.3, mask.shape)
    cloud[..., 3] = 1.0
    return np.where(mask[..., None], cloud, 0.0)


def test_ratio_histogram_matches_numpy():
    rng = np.random.default_rng(1)
    real, gen = rng.normal(80.0, 10.0, 2_000), rng.normal(83.0, 12.0, 1_500)
    edges = np.linspace(40.0, 120.0, 21)
    fig = ratio_histogram(real, gen, bins=edges, label="jet mass", unit="GeV")
    assert isinstance(fig, Figure)
    top, bottom = fig.axes
    assert bottom.get_xlabel() == "jet mass [GeV]"
    assert top.get_ylabel() == "density [1/GeV]"
    assert "jet mass" in top.get_title()
    assert [t.get_text() for t in top.get_legend().get_texts()] == [
        "real (N=2000)",
        "generated (N=1500)",
    ]

    n_real, _ = np.histogram(real, edges)
    n_gen, _ = np.histogram(gen, edges)
    d_real, _ = np.histogram(real, edges, density=True)
    d_gen, _ = np.histogram(gen, edges, density=True)
    width = np.diff(edges)
    centres = (edges[:-1] + edges[1:]) / 2

    _, real_step = top.patches  # filled area, outline
    np.testing.assert_allclose(real_step.get_data().values, d_real)
    x, y, yerr = _errorbar(top)
    shown = n_gen > 0
    np.testing.assert_allclose(x, centres[shown])
    np.testing.assert_allclose(y, d_gen[shown])
    np.testing.assert_allclose(yerr, np.sqrt(n_gen[shown]) / (n_gen.sum() * width[shown]))

    x, y, yerr = _errorbar(bottom)
    ok = n_real > 0
    ratio = d_gen[ok] / d_real[ok]
    np.testing.assert_allclose(x, centres[ok])
    np.testing.assert_allclose(y, ratio)
    # Independent propagation: relative Poisson errors added in quadrature.
    np.testing.assert_allclose(yerr, ratio * np.sqrt(1 / n_gen[ok] + 1 / n_real[ok]))
    assert any(list(line.get_ydata()) == [1.0, 1.0] for line in bottom.lines)  # the line at 1
    assert bottom.get_ylim() == (0.0, 2.0)


def test_ratio_histogram_has_the_hep_look_without_leaking_style():
    before = dict(mpl.rcParams)
    fig = ratio_histogram([1.0, 2.0, 2.5], [1.5, 2.0], bins=3, label="x")
    assert dict(mpl.rcParams) == before
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            tick = axis.get_major_ticks()[0]
            assert tick.get_tickdir() == "in"
            assert tick.tick2line.get_visible()  # ticks on the top and right too
    assert fig.axes[0].get_shared_x_axes().joined(*fig.axes)


def test_ratio_histogram_integer_bins_and_log():
    rng = np.random.default_rng(2)
    real, gen = rng.exponential(1.0, 500), rng.exponential(1.2, 400)
    fig = ratio_histogram(real, gen, bins=15, label="pT", unit=None, log=True)
    top, bottom = fig.axes
    assert top.get_yscale() == "log"
    assert bottom.get_xlabel() == "pT"
    edges = np.histogram_bin_edges(np.concatenate([real, gen]), 15)
    assert bottom.get_xlim() == pytest.approx((edges[0], edges[-1]))
    np.testing.assert_allclose(
        top.patches[1].get_data().values, np.histogram(real, edges, density=True)[0]
    )


def test_ratio_histogram_errors_match_the_closed_form_by_hand():
    # Bins [0, 1), [1, 2), [2, 3]: real has counts n = (4, 1, 0) in range and one entry above,
    # generated m = (1, 2, 3). Densities are counts / (in-range entries * width 1).
    real = [0.5] * 4 + [1.5] + [7.0]
    gen = [0.5] + [1.5] * 2 + [2.5] * 3
    fig = ratio_histogram(real, gen, bins=[0.0, 1.0, 2.0, 3.0], label="x")
    top, bottom = fig.axes
    assert [t.get_text() for t in top.get_legend().get_texts()] == [
        "real (N=6)",
        "generated (N=6)",
    ]
    np.testing.assert_allclose(top.patches[1].get_data().values, [4 / 5, 1 / 5, 0.0])

    x, y, yerr = _errorbar(top)
    np.testing.assert_allclose(x, [0.5, 1.5, 2.5])
    np.testing.assert_allclose(y, [1 / 6, 2 / 6, 3 / 6])
    np.testing.assert_allclose(yerr, np.sqrt([1, 2, 3]) / 6)  # sqrt(m) / (6 * width)

    # Ratio (m / 6) / (n / 5), error ratio * sqrt(1/m + 1/n); none where real is empty.
    x, y, yerr = _errorbar(bottom)
    np.testing.assert_allclose(x, [0.5, 1.5])
    np.testing.assert_allclose(y, [5 / 24, 10 / 6])
    np.testing.assert_allclose(yerr, [5 / 24 * np.sqrt(1 + 1 / 4), 10 / 6 * np.sqrt(1 / 2 + 1)])


def test_ratio_histogram_last_bin_holds_the_maximum_as_in_numpy():
    fig = ratio_histogram([0.0, 1.0, 2.0, 3.0], [0.0, 3.0], bins=3, label="x")
    top, bottom = fig.axes
    np.testing.assert_allclose(top.patches[1].get_data().values, [0.25, 0.25, 0.5])
    x, y, _ = _errorbar(bottom)
    np.testing.assert_allclose(x, [0.5, 1.5, 2.5])
    np.testing.assert_allclose(y, [2.0, 0.0, 1.0])


def test_figures_draw_the_same_png_twice_without_font_warnings(caplog):
    # Fonts come with mplhep-data (no download); mathtext is drawn after the style's context.
    def pngs():
        rng = np.random.default_rng(8)
        cloud = _cloud(rng, 50, 6, rng.integers(1, 7, 50))
        figs = [
            *particle_histograms(cloud, cloud[::-1], bins=8),
            mean_images(rng.exponential(1.0, (4, 5, 5)), np.ones((3, 5, 5))),
        ]
        images = []
        for fig in figs:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=50)
            images.append(buffer.getvalue())
        return images

    with caplog.at_level("WARNING", logger="matplotlib"):
        assert pngs() == pngs()
    assert caplog.records == []


def test_feature_histograms_label_each_column():
    rng = np.random.default_rng(3)
    real, gen = rng.normal(size=(300, 3)), rng.normal(size=(200, 3))
    figs = feature_histograms(real, gen, ["jet pT", "jet eta", "jet mass"], ["GeV", None, "GeV"])
    assert [f.axes[1].get_xlabel() for f in figs] == ["jet pT [GeV]", "jet eta", "jet mass [GeV]"]
    assert all(len(f.axes) == 2 for f in figs)


def test_particle_histograms_exclude_masked_particles():
    rng = np.random.default_rng(4)
    real = _cloud(rng, 200, 10, rng.integers(2, 11, 200))
    gen = _cloud(rng, 150, 10, rng.integers(2, 11, 150))
    figs = particle_histograms(real, gen, bins=12)
    labels = [f"{label} [{unit}]" if unit else label for label, unit, _ in PARTICLE_LABELS]
    assert [f.axes[1].get_xlabel() for f in figs] == labels
    eta_real = real[..., 0][real[..., 3] > 0.5]
    eta_gen = gen[..., 0][gen[..., 3] > 0.5]
    edges = np.histogram_bin_edges(np.concatenate([eta_real, eta_gen]), 12)
    # The zero padding would pull the range down to 0; real particles start at 0.5.
    assert figs[0].axes[1].get_xlim()[0] >= 0.5
    np.testing.assert_allclose(
        figs[0].axes[0].patches[1].get_data().values, np.histogram(eta_real, edges, density=True)[0]
    )
    assert figs[2].axes[0].get_yscale() == "log"


def test_multiplicity_histogram_counts_real_particles():
    rng = np.random.default_rng(5)
    n_real, n_gen = rng.integers(3, 9, 300), rng.integers(2, 10, 250)
    fig = multiplicity_histogram(_cloud(rng, 300, 12, n_real), _cloud(rng, 250, 12, n_gen))
    top, bottom = fig.axes
    assert bottom.get_xlabel() == "particle multiplicity"
    step = top.patches[1].get_data()
    np.testing.assert_allclose(step.edges, np.arange(2, 11) - 0.5)
    np.testing.assert_allclose(step.values, np.bincount(n_real, minlength=10)[2:10] / 300)


def test_mean_images_show_means_and_difference():
    rng = np.random.default_rng(6)
    real = rng.exponential(1.0, (40, 5, 5))
    gen = rng.exponential(1.5, (30, 5, 5))
    fig = mean_images(real, gen, extent=1.25)
    assert len(fig.axes) == 5  # three images, two colour bars
    real_ax, gen_ax, diff_ax = fig.axes[:3]
    for ax in (real_ax, gen_ax, diff_ax):
        assert ax.get_xlabel() == r"$\eta'$"
        assert ax.get_ylabel() == r"$\phi'$ [rad]"
        assert ax.images[0].get_extent() == [-1.25, 1.25, -1.25, 1.25]
        assert ax.images[0].origin == "lower"
    np.testing.assert_allclose(real_ax.images[0].get_array(), real.mean(axis=0))
    np.testing.assert_allclose(gen_ax.images[0].get_array(), gen.mean(axis=0))
    assert isinstance(real_ax.images[0].norm, LogNorm)
    diff = diff_ax.images[0]
    np.testing.assert_allclose(diff.get_array(), gen.mean(axis=0) - real.mean(axis=0))
    assert diff.norm.vmin == pytest.approx(-diff.norm.vmax)


def test_training_curves_plot_the_logged_keys():
    rows = [
        {"step": s, "d_loss": 1.4 - s / 100, "g_loss": 0.7, "d_real": 0.6, "d_fake": 0.4}
        for s in (10, 20, 30)
    ]
    rows.append({"step": 40, "d_loss": 1.0, "jsd_bound": 0.1})
    fig = training_curves(rows)
    losses, d_out, jsd = fig.axes
    assert jsd.get_xlabel() == "step"
    d_loss, g_loss = losses.lines
    np.testing.assert_allclose(d_loss.get_xydata(), [[r["step"], r["d_loss"]] for r in rows])
    np.testing.assert_allclose(g_loss.get_xdata(), [10, 20, 30])  # missing in the last row
    assert [ln.get_label() for ln in d_out.lines] == ["D(x), train batch", "D(G(z)), train batch"]
    assert jsd.lines[0].get_xydata().tolist() == [[40.0, 0.1]]
    assert jsd.lines[1].get_ydata()[0] == pytest.approx(np.log(2))  # the maximum JSD


def test_training_curves_say_when_nothing_was_logged():
    fig = training_curves([{"step": 1, "d_loss": 1.0}])
    assert not fig.axes[2].lines
    assert [t.get_text() for t in fig.axes[2].texts] == ["not logged"]


def test_toy_scatter_draws_samples_over_contours():
    ring = ring8()
    samples = ring.sample(300, seed=0)
    fig = toy_scatter(samples, ring)
    (ax,) = fig.axes
    np.testing.assert_allclose(ax.collections[-1].get_offsets(), samples)
    assert len(ax.collections) >= 2  # contour set and scatter
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("$x_1$", "$x_2$")
    assert ax.get_legend() is not None


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ratio_histogram([], [1.0], label="x"), "empty"),
        (lambda: ratio_histogram([1.0, np.nan], [1.0], label="x"), "NaN"),
        (lambda: ratio_histogram(np.ones((2, 2)), [1.0], label="x"), "dimension"),
        (lambda: ratio_histogram([1.0], [1.0], bins=[1.0, 0.0], label="x"), "increasing"),
        (lambda: feature_histograms(np.ones((3, 2)), np.ones((3, 3)), "ab", "ab"), "counts"),
        (lambda: feature_histograms(np.ones((3, 2)), np.ones((3, 2)), "abc", "ab"), "counts"),
        (lambda: particle_histograms(np.ones((2, 3, 3)), np.ones((2, 3, 4))), "4 features"),
        (lambda: particle_histograms(np.zeros((2, 3, 4)), np.ones((2, 3, 4))), "no particles"),
        (lambda: multiplicity_histogram(np.zeros((0, 3, 4)), np.ones((2, 3, 4))), "empty"),
        (lambda: mean_images(np.ones((2, 5, 5)), np.ones((2, 4, 4))), "one size"),
        (lambda: mean_images(np.zeros((2, 5, 5)), np.zeros((2, 5, 5))), "positive"),
        (lambda: training_curves([]), "no metrics"),
        (lambda: training_curves([{"d_loss": 1.0}]), "step"),
        (lambda: toy_scatter(np.ones((3, 3)), ring8()), "2-D"),
        (lambda: toy_scatter(np.ones((3, 2)), GaussianMixture([0.0], [[[1.0]]])), "2-D"),
    ],
)
def test_bad_input_is_a_data_error(call, match):
    with pytest.raises(DataError, match=match):
        call()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report with two figures (one made by pyplot), a hostile config and two metrics."""
    rng = np.random.default_rng(7)
    hist = ratio_histogram(rng.normal(size=200), rng.normal(size=200), label="x")
    pyplot_fig = plt.figure()
    pyplot_fig.add_subplot().plot([0, 1], [1, 0])
    path = tmp_path_factory.mktemp("report") / "report.html"
    out = write_report(
        path,
        title="Run <ring8> & friends",
        summary_rows=[
            SummaryRow("W1M x 10^3", 0.612, 0.05, 0.55, 0.1, "matches"),
            {
                "metric": "FPD x 10^3",
                "value": 4.6,
                "std": 0.3,
                "floor": 2.0,
                "floor_std": 0.2,
                "verdict": "2.3x floor",
            },
        ],
        figures=[("mass <ratio>", hist), ("a pyplot figure", pyplot_fig)],
        config_text="seed: 1\nnote: <script>alert('x')</script>",
        provenance={"version": "0.1.0", "seed": 1, "data_sha256": "ab" * 32, "date": "2024-01-01"},
    )
    assert not plt.fignum_exists(pyplot_fig.number)  # closed after encoding
    return out


def test_report_holds_summary_config_and_provenance(report):
    assert report.name == "report.html"
    assert [p.name for p in report.parent.iterdir()] == ["report.html"]  # no temporary left
    text = report.read_text()
    assert "<h1>Run &lt;ring8&gt; &amp; friends</h1>" in text
    assert '<td class="num">0.612 &plusmn; 0.05</td>' in text
    assert '<td class="num">0.55 &plusmn; 0.1</td>' in text
    assert '<td class="matches">matches</td>' in text
    assert '<td class="num">4.6 &plusmn; 0.3</td>' in text
    assert '<td class="worse">2.3x floor</td>' in text
    assert text.index("Summary") < text.index("<figure>") < text.index("Configuration")
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "ab" * 32 in text
    assert "mass &lt;ratio&gt;" in text
    assert "http://" not in text
    assert "https://" not in text


def test_report_images_are_inline_pngs(report):
    sources = re.findall(r'<img src="([^"]*)"', report.read_text())
    assert len(sources) == 2
    for src in sources:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        png = base64.b64decode(src[len(prefix) :], validate=True)
        assert png[:8] == PNG_SIGNATURE
        pixels = matplotlib.image.imread(io.BytesIO(png))
        assert pixels.ndim == 3
        assert min(pixels.shape[:2]) > 100


def test_report_renders_in_chromium(report, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("PHYSGAN_REQUIRE_BROWSER"):  # .ci/run installs it: never skip there
            pytest.fail("PHYSGAN_REQUIRE_BROWSER is set, but chromium is not on the PATH")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    problems = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page()
            page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images, img => [img.complete, img.naturalWidth])"
            )
            screenshot = tmp_path / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert len(images) == 2
    assert all(complete and width > 0 for complete, width in images)
    assert screenshot.stat().st_size > 0
    assert screenshot.read_bytes()[:8] == PNG_SIGNATURE
