"""utils.viz: image grids are laid out exactly; plots return Axes holding the expected artists."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: never open a window during tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from utils import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(6, 28, 28, generator=torch.Generator().manual_seed(0))


# --- image_grid ------------------------------------------------------------------------------


def test_image_grid_shape_counts_images_and_padding(images):
    grid = viz.image_grid(images, nrow=3, pad=1)
    assert grid.shape == (2 * 29 + 1, 3 * 29 + 1), "grid should be rows*(h+pad)+pad by cols*(w+pad)+pad"


def test_image_grid_default_is_square_ish(images):
    grid = viz.image_grid(images[:5], pad=0)
    assert grid.shape == (2 * 28, 3 * 28), "5 images should tile as ceil(sqrt(5)) = 3 per row, 2 rows"


def test_image_grid_places_each_image_and_fills_padding(images):
    grid = viz.image_grid(images, nrow=3, pad=2, pad_value=0.25)
    top, left = 2 + 1 * 30, 2 + 2 * 30  # image 5 is in row 1, column 2
    assert np.allclose(grid[top : top + 28, left : left + 28], images[5].numpy()), "image 5 is misplaced"
    assert np.all(grid[:2] == 0.25) and np.all(grid[:, :2] == 0.25), "the frame should be pad_value"


def test_image_grid_accepts_every_layout_alike(images):
    reference = viz.image_grid(images)
    for variant in (images.reshape(6, 784), images[:, None], images.numpy(), images.reshape(6, 784).numpy()):
        assert np.allclose(viz.image_grid(variant), reference), (
            f"layout {tuple(variant.shape)} drawn differently"
        )


def test_image_grid_scales_uint8_to_unit_range():
    x = torch.full((2, 4, 4), 255, dtype=torch.uint8)
    x[1] = 0
    grid = viz.image_grid(x, pad=0, nrow=2)
    assert grid.max() == 1.0 and grid.min() == 0.0, "uint8 255 should become 1.0 and 0 stay 0.0"


def test_image_grid_rejects_logits_with_a_hint(images):
    with pytest.raises(ValueError, match="sigmoid"):
        viz.image_grid(images * 10 - 5)


def test_image_grid_auto_range_stretches(images):
    grid = viz.image_grid(images * 10 - 5, value_range="auto", pad=0)
    assert grid.min() == pytest.approx(0.0) and grid.max() == pytest.approx(1.0)


def test_image_grid_non_square_vectors_need_image_shape():
    with pytest.raises(ValueError, match="image_shape"):
        viz.image_grid(torch.rand(3, 50))
    assert viz.image_grid(torch.rand(3, 50), image_shape=(5, 10), pad=0, nrow=3).shape == (5, 30)


def test_image_grid_colour_images_are_channels_last():
    grid = viz.image_grid(torch.rand(4, 3, 8, 8), nrow=2, pad=0)
    assert grid.shape == (16, 16, 3), "[N, 3, H, W] should give an RGB grid [H, W, 3]"


# --- show_images / density / scatter / curves --------------------------------------------------


def test_show_images_draws_the_grid_on_an_axes(images):
    ax = viz.show_images(images, nrow=3, title="samples")
    assert isinstance(ax, Axes), "plot functions should return the Axes they drew on"
    assert np.allclose(ax.get_images()[0].get_array(), viz.image_grid(images, nrow=3))
    assert ax.get_title() == "samples"


def test_show_images_uses_a_given_axes(images):
    _, ax = plt.subplots()
    assert viz.show_images(images, ax=ax) is ax


def _gaussian_log_prob(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x**2).sum(-1)


def test_density_grid_evaluates_at_grid_points():
    xs, ys, log_p = viz.density_grid(_gaussian_log_prob, bounds=(-2, 2, -1, 3), n=21)
    assert log_p.shape == (21, 21)
    assert log_p[4, 7] == pytest.approx(-0.5 * (xs[7] ** 2 + ys[4] ** 2)), (
        "log_p[i, j] should be at (xs[j], ys[i])"
    )


def test_density_is_evaluated_without_grad_and_in_chunks():
    seen = []

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        seen.append((x.shape[0], torch.is_grad_enabled()))
        return _gaussian_log_prob(x)

    viz.density_grid(log_prob, n=50, chunk=1000)
    assert max(m for m, _ in seen) <= 1000 and sum(m for m, _ in seen) == 2500, (
        "chunking lost or exceeded points"
    )
    assert not any(grad for _, grad in seen), "log_prob_fn should run under torch.no_grad"


def test_plot_density_2d_draws_contours_and_samples():
    samples = torch.randn(300, 2)
    ax = viz.plot_density_2d(_gaussian_log_prob, n=40, samples=samples)
    contours = [c for c in ax.collections if c.__class__.__name__ == "QuadContourSet"]
    assert contours, "expected a filled contour set"
    assert any(c.get_offsets().shape[0] == 300 for c in ax.collections), (
        "samples overlay should hold 300 points"
    )


def test_plot_density_2d_log_scale_handles_minus_infinity():
    def box(x: torch.Tensor) -> torch.Tensor:
        inside = (x.abs() < 1).all(-1)
        return torch.where(inside, torch.zeros(x.shape[0]), torch.full((x.shape[0],), -torch.inf))

    ax = viz.plot_density_2d(box, n=30, log_scale=True)
    assert ax.collections, "a density that is -inf outside its support should still draw"


def test_plot_density_2d_names_a_missing_sum():
    with pytest.raises(ValueError, match="sum over the last dimension"):
        viz.plot_density_2d(lambda x: -0.5 * x**2, n=10)


def test_plot_density_2d_reports_nan():
    with pytest.raises(ValueError, match="NaN"):
        viz.plot_density_2d(lambda x: torch.log(x[:, 0]), n=10)


def test_plot_latent_scatter_has_one_point_per_code_and_a_class_legend():
    z = torch.randn(200, 2)
    labels = torch.arange(200) % 10
    ax = viz.plot_latent_scatter(z, labels)
    assert ax.collections[0].get_offsets().shape[0] == 200, "all codes should be in one scatter"
    assert len(ax.get_legend().get_texts()) == 10, "one legend entry per class"


def test_plot_latent_scatter_projects_higher_dimensions():
    z = torch.randn(50, 5)
    ax = viz.plot_latent_scatter(z, dims=(2, 4))
    assert np.allclose(ax.collections[0].get_offsets(), z[:, [2, 4]].numpy())
    ax = viz.plot_latent_scatter(z, project="pca")
    assert ax.get_xlabel() == "PC 1"


def test_plot_latent_scatter_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="one label per code"):
        viz.plot_latent_scatter(torch.randn(10, 2), torch.zeros(9))


def test_plot_curves_draws_one_line_per_key():
    ax = viz.plot_curves({"loss": [3.0, 2.0, 1.5], "kl": [0.1, 0.2, 0.3], "note": "text"})
    assert [line.get_label() for line in ax.get_lines()] == ["loss", "kl"], "non-numeric entries are skipped"


def test_plot_curves_accepts_history_like_objects_and_step_axis():
    class FakeHistory:
        def to_dict(self):
            return {"step": [10, 20, 30], "loss": [1.0, 0.5, 0.25]}

    ax = viz.plot_curves(FakeHistory(), logy=True)
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [10, 20, 30], "a 'step' entry should be the x axis"
    assert ax.get_yscale() == "log"


def test_plot_curves_reads_step_value_pairs():
    ax = viz.plot_curves({"eval_loss": [(0, 2.0), (100, 1.0), (200, 0.5)]})
    assert list(ax.get_lines()[0].get_xdata()) == [0, 100, 200], "(step, value) pairs give their own x"


def test_plot_curves_smooth_adds_a_moving_average():
    ax = viz.plot_curves({"loss": [3.0, 1.0, 2.0, 0.0]}, smooth=0.5)
    raw, average = ax.get_lines()
    assert list(average.get_ydata()) == [3.0, 2.0, 2.0, 1.0], "EMA with weight 0.5 started at the first value"


def test_plot_curves_reads_a_training_history():
    train = pytest.importorskip("utils.train")
    history = train.History()
    for step in (10, 20, 30):
        history.log(step, step / 10, 0.1 * step, {"loss": 1.0 / step, "kl": 0.5})
    history.log_eval(30, {"loss": 0.2})
    ax = viz.plot_curves(history)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["loss", "kl", "eval_loss"], f"History.to_dict() keys drawn as {labels}"
    assert list(ax.get_lines()[0].get_xdata()) == [10, 20, 30]


def test_plot_curves_names_missing_keys():
    with pytest.raises(KeyError, match="available keys"):
        viz.plot_curves({"loss": [1.0]}, keys=["elbo"])


def test_plot_histograms_one_histogram_per_entry():
    ax = viz.plot_histograms({"score function": torch.randn(500), "reparam": 0.1 * torch.randn(500)}, bins=20)
    assert len(ax.get_legend().get_texts()) == 2
    assert len(ax.patches) == 40, "two histograms of 20 bins"


def test_plot_histograms_names_an_entry_without_finite_values():
    with pytest.raises(ValueError, match=r"no finite values for \['score function'\]"):
        viz.plot_histograms({"score function": torch.tensor([float("nan")]), "reparam": torch.randn(5)})


def test_plotting_writes_no_files(tmp_path, monkeypatch, images):
    monkeypatch.chdir(tmp_path)
    viz.show_images(images)
    viz.plot_density_2d(_gaussian_log_prob, n=20)
    viz.plot_latent_scatter(torch.randn(20, 2), torch.arange(20) % 3)
    viz.plot_curves({"loss": [1.0, 0.5]})
    assert list(tmp_path.iterdir()) == [], "viz functions must not save files"
