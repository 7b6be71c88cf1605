"""What an autoencoder run leaves besides its metrics: `reconstructions.png`, `latent.png`,
`samples.png` (VAE) and `baselines.json` (test MSE of the train mean image and of PCA with as
many components as the latent code, beside the model's own)."""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dlx.nn import autoencoder
from dlx.train import outputs

SHOWN = 8  # Test examples in reconstructions.png.
SAMPLE_SEED = 1  # samples.png decodes z ~ N(0, I) drawn with PRNGKey(SAMPLE_SEED).
SAMPLE_GRID = 8  # samples.png: an 8 x 8 grid of decoded images (4 x 4 for 1-D signals).


def codes_and_values(model, params, x_N: np.ndarray, samples: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z_NL, values of x's shape, values_S...) in one compiled call: the code of each input
    (the posterior mean for a VAE), the values decoded from it (sigmoid of Bernoulli logits),
    and those decoded from `samples` codes z ~ N(0, I) drawn with `PRNGKey(SAMPLE_SEED)`."""
    def run(params, x_N):
        z_SL = jax.random.normal(jax.random.PRNGKey(SAMPLE_SEED), (samples, model.latent))
        code = model.apply({"params": params}, x_N, method="encode")
        z_NL = code[0] if isinstance(code, tuple) else code
        decode = lambda z: autoencoder.mean(
            model.apply({"params": params}, z, method="decode"), model.likelihood)
        samples_S = decode(z_SL) if samples else jnp.zeros((0, *x_N.shape[1:]))
        return z_NL, decode(z_NL).reshape(x_N.shape), samples_S

    return tuple(np.asarray(a) for a in jax.jit(run)(params, x_N))


def pca_reconstruction_mse(train_ND: np.ndarray, test_ND: np.ndarray, components: int) -> float:
    """Test MSE of projecting onto the top `components` principal axes of the train rows."""
    mean_D = train_ND.mean(axis=0)
    centred_ND = train_ND - mean_D[None]
    _, eigenvectors_DD = np.linalg.eigh(centred_ND.T @ centred_ND)  # Ascending eigenvalues.
    axes_KD = eigenvectors_DD[:, ::-1][:, :components].T
    centred_ND = test_ND - mean_D[None]
    rebuilt_ND = centred_ND @ axes_KD.T @ axes_KD + mean_D[None]
    return float(np.mean((test_ND - rebuilt_ND) ** 2))


def _cross_entropy(x_ND: np.ndarray, p_ND: np.ndarray) -> np.ndarray:
    """Per row: sum of -x log p - (1 - x) log(1 - p), with p kept inside [1e-6, 1 - 1e-6]."""
    p_ND = np.clip(p_ND, 1e-6, 1 - 1e-6)
    return -(x_ND * np.log(p_ND) + (1 - x_ND) * np.log1p(-p_ND)).sum(-1)


def baselines(model, train_N: np.ndarray, test_N: np.ndarray, model_values_N: np.ndarray
              ) -> dict[str, float]:
    """Test MSE of the model, of the train mean image and of PCA at the latent size; for a
    Bernoulli (or VAE) likelihood also the NLL of the mean image, nats per example, and for a
    Bernoulli one the cross-entropy of a perfect reconstruction (the floor for graded pixels)."""
    train_ND = train_N.reshape(len(train_N), -1).astype(np.float64)
    test_ND = test_N.reshape(len(test_N), -1).astype(np.float64)
    mean_D = train_ND.mean(axis=0)
    components = min(model.latent, *train_ND.shape)
    result = {"model_mse": float(np.mean((test_N - model_values_N) ** 2)),
              "mean_image_mse": float(np.mean((test_ND - mean_D[None]) ** 2)),
              "pca_mse": pca_reconstruction_mse(train_ND, test_ND, components),
              "pca_components": components}
    if model.likelihood == "bernoulli":
        result["mean_image_nll"] = float(_cross_entropy(test_ND, mean_D[None]).mean())
        # Graded pixels keep a Bernoulli cross-entropy above 0 even for a perfect reconstruction.
        result["perfect_reconstruction_nll"] = float(_cross_entropy(test_ND, test_ND).mean())
    elif hasattr(model, "sigma"):
        sigma = model.sigma
        nll_N = (0.5 * ((test_ND - mean_D[None]) / sigma) ** 2
                 + np.log(sigma) + 0.5 * np.log(2 * np.pi)).sum(-1)
        result["mean_image_nll"] = float(nll_N.mean())
    return result


def tile(images_N: np.ndarray, columns: int) -> np.ndarray:
    """Images (N, H, W) or (N, H, W, C) -> one mosaic, `columns` wide, a 1-pixel gap between
    images (NaN, drawn as the background); the last row is padded with blanks."""
    if images_N.ndim == 4 and images_N.shape[-1] == 1:
        images_N = images_N[..., 0]
    rows = -(-len(images_N) // columns)
    blank = np.full((rows * columns - len(images_N), *images_N.shape[1:]), np.nan)
    padded = np.concatenate([images_N.astype(np.float64), blank])
    gap = [(0, 0), (0, 1), (0, 1)] + [(0, 0)] * (images_N.ndim - 3)
    padded = np.pad(padded, gap, constant_values=np.nan)
    height, width = padded.shape[1:3]
    grid = padded.reshape(rows, columns, *padded.shape[1:]).swapaxes(1, 2)
    return grid.reshape(rows * height, columns * width, *padded.shape[3:])[:-1, :-1]


def _show_mosaic(ax, mosaic: np.ndarray) -> None:
    """Draws a `tile` mosaic in grey, values clipped to [0, 1], gaps white, without ticks."""
    ax.set_facecolor("white")
    ax.imshow(np.clip(mosaic, 0.0, 1.0), cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_reconstructions(inputs_N: np.ndarray, values_N: np.ndarray, path: pathlib.Path,
                         title: str) -> None:
    """Test inputs over their reconstructions (images: two rows; signals: overlaid lines)."""
    shown = min(SHOWN, len(inputs_N))
    if inputs_N.ndim == 2:
        ncols = min(shown, 4)
        fig, axes = outputs.figure(ncols, -(-shown // ncols), size=(3 * ncols, 4.5),
                                   squeeze=False)
        for i, ax in enumerate(axes.flat[:shown]):
            ax.plot(inputs_N[i], label="input", color="black")
            ax.plot(values_N[i], label="reconstruction", color="tab:red", linestyle="--")
            ax.set_title(f"test {i}", fontsize="small")
        axes[0][0].legend(fontsize="x-small")
    else:
        fig, ax = outputs.figure(size=(1.2 * shown + 1.2, 3.2))
        _show_mosaic(ax, tile(np.concatenate([inputs_N[:shown], values_N[:shown]]), shown))
        height = inputs_N.shape[1] + 1
        ax.set_yticks([height / 2 - 1, 1.5 * height - 1], ["input", "reconstruction"])
    fig.suptitle(title)
    outputs.save_figure(fig, path)


def project_2d(z_NL: np.ndarray) -> tuple[np.ndarray, tuple[str, str]]:
    """(points_N2, axis labels): the code itself when L <= 2 (L = 1 gets a zero second axis),
    else its top two principal components."""
    if z_NL.shape[1] == 2:
        return z_NL, ("z 1", "z 2")
    if z_NL.shape[1] == 1:
        return np.concatenate([z_NL, np.zeros_like(z_NL)], axis=1), ("z 1", "")
    centred_NL = z_NL - z_NL.mean(axis=0)[None]
    _, singular_L, axes_LL = np.linalg.svd(centred_NL, full_matrices=False)
    share_L = singular_L ** 2 / max(float(np.sum(singular_L ** 2)), 1e-12)
    labels = (f"PC 1 ({share_L[0]:.0%} of variance)", f"PC 2 ({share_L[1]:.0%})")
    return centred_NL @ axes_LL[:2].T, labels


def plot_latent(z_NL: np.ndarray, labels_N: np.ndarray | None, path: pathlib.Path,
                title: str) -> None:
    """Scatter of the test codes in 2-D (PCA when wider), coloured by label when there are any."""
    points_N2, (xlabel, ylabel) = project_2d(z_NL)
    fig, ax = outputs.figure(size=(6, 5))
    if labels_N is None:
        ax.scatter(points_N2[:, 0], points_N2[:, 1], s=6, alpha=0.7)
    else:
        for label in np.unique(labels_N):
            rows = labels_N == label
            ax.scatter(points_N2[rows, 0], points_N2[rows, 1], s=6, alpha=0.7, label=str(label),
                       color=f"C{int(label) % 10}")
        ax.legend(title="label", fontsize="small", markerscale=2, loc="best")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    outputs.save_figure(fig, path)


def plot_samples(values_N: np.ndarray, path: pathlib.Path, title: str) -> None:
    """A square grid of decoded samples: one mosaic of images, or small line plots of signals."""
    side = int(round(len(values_N) ** 0.5))
    if values_N.ndim > 2:
        fig, ax = outputs.figure(size=(6, 6.3))
        _show_mosaic(ax, tile(values_N[:side * side], side))
    else:
        fig, axes = outputs.figure(side, side, size=(1.6 * side, 1.2 * side + 0.4),
                                   squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.plot(values_N[i], color="black")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    outputs.save_figure(fig, path)


def write(model, params, splits, workdir, samples: bool) -> dict[str, str]:
    """Writes the plots (and `samples.png` when `samples`) and `baselines.json` into `workdir`;
    returns `{name: file}`."""
    workdir = pathlib.Path(workdir)
    x_N = np.asarray(splits.test["x"], np.float32)
    labels_N = splits.test.get("y")
    if labels_N is not None and np.asarray(labels_N).ndim != 1:
        labels_N = None
    count = (SAMPLE_GRID ** 2 if x_N.ndim > 2 else 16) if samples else 0
    z_NL, values_N, samples_S = codes_and_values(model, params, x_N, count)
    name = type(model).__name__
    plot_reconstructions(x_N, values_N, workdir / "reconstructions.png",
                         f"{name}: test inputs and reconstructions")
    plot_latent(z_NL, labels_N, workdir / "latent.png", f"{name}: test codes")
    files = {"reconstructions": "reconstructions.png", "latent": "latent.png"}
    if samples:
        plot_samples(samples_S, workdir / "samples.png", f"{name}: decoded z ~ N(0, I)")
        files["samples"] = "samples.png"
    train_N = np.asarray(splits.train["x"], np.float32)
    outputs.write_json(workdir / "baselines.json", baselines(model, train_N, x_N, values_N))
    files["baselines"] = "baselines.json"
    return files

