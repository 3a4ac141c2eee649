"""ODE/SDE solvers written once in σ (or λ = −log σ), in the style of k-diffusion's sampling.py.

Each walks noise levels `sigmas` (descending floats ending in 0) from x = σ_0·z (variance
exploding, x = x_0 + σ·ε) with `denoise(x, sigma) -> x̂_0`, any process's continuous view. The
last step goes to σ = 0 and returns D(x; σ_{N−1}). `callback(sigma, x, denoised)` sees each
evaluation; `noise(x)` draws a standard normal like x (the stochastic solvers' only source).
"""

import math
from collections.abc import Callable, Iterable

import torch
from rich.progress import track

Denoise = Callable[[torch.Tensor, float], torch.Tensor]


def sample_heun(
    denoise: Denoise,
    x,
    sigmas,
    *,
    s_churn=0.0,
    s_tmin=0.0,
    s_tmax=math.inf,
    s_noise=1.0,
    sigma_max=math.inf,
    noise=None,
    callback=None,
    progress=False,
):
    """EDM's sampler (Karras et al. 2022, Algorithm 2; Algorithm 1 when s_churn = 0).

    Heun's method on dx/dσ = (x − D(x; σ))/σ (eq. 3 with σ(t) = t); churn raises σ_i to
    σ̂ = (1+γ)σ_i (at most `sigma_max`, the highest level the network knows), γ = S_churn/N.
    NFE: 2N − 1 for N levels.
    """
    gamma = min(s_churn / (len(sigmas) - 1), math.sqrt(2) - 1)
    for i in _steps(len(sigmas) - 1, progress, "heun"):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        if gamma > 0 and s_tmin <= sigma <= s_tmax:  # lines 4–6: add noise up to σ̂
            sigma_hat = min((1 + gamma) * sigma, max(sigma_max, sigma))
            x = x + math.sqrt(sigma_hat**2 - sigma**2) * s_noise * noise(x)
            sigma = sigma_hat
        denoised = denoise(x, sigma)
        if callback is not None:
            callback(sigma, x, denoised)
        d = (x - denoised) / sigma  # line 7
        x_next = x + (sigma_next - sigma) * d  # line 8: Euler step
        if sigma_next > 0:  # lines 9–11: second-order correction
            d_next = (x_next - denoise(x_next, sigma_next)) / sigma_next
            x_next = x + (sigma_next - sigma) * (d + d_next) / 2
        x = x_next
    return x


def sample_dpmpp_2m(denoise: Denoise, x, sigmas, *, callback=None, progress=False, **_):
    """DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2): multistep, data prediction, in λ.

    x_{i+1} = (σ_{i+1}/σ_i)·x_i − expm1(−h_i)·D_i, D_i = (1 + 1/2r_i)·x̂_0(i) − 1/2r_i·x̂_0(i−1),
    r_i = h_{i−1}/h_i; the first step is first order. NFE: one per level above 0.
    """
    old = h_old = None
    for i in _steps(len(sigmas) - 1, progress, "dpm_solver"):
        denoised = denoise(x, sigmas[i])
        if callback is not None:
            callback(sigmas[i], x, denoised)
        if sigmas[i + 1] == 0:
            return denoised
        h = math.log(sigmas[i] / sigmas[i + 1])
        d = denoised if old is None else denoised + (denoised - old) * (h / (2 * h_old))
        x = (sigmas[i + 1] / sigmas[i]) * x - math.expm1(-h) * d
        old, h_old = denoised, h
    return x


def sample_dpmpp_3m(denoise: Denoise, x, sigmas, *, callback=None, progress=False, **_):
    """DPM-Solver++ third-order multistep (Lu et al. 2022b, §3.2 with App. B's 3M update).

    The exponential integrator x_{i+1} = e^{−h}x_i + (1−e^{−h})x̂_0 + φ_2·D1 − φ_3·D2, with D1,
    D2 the first and second divided differences of x̂_0 in λ over the last three levels,
    φ_2 = 1 − (1−e^{−h})/h, φ_3 = φ_2/h − ½ (k-diffusion's sample_dpmpp_3m_sde at η = 0).
    Orders 1 and 2 on the first two steps. NFE: one per level above 0.
    """
    history: list[tuple[torch.Tensor, float]] = []  # (x̂_0, h) of the last two steps
    for i in _steps(len(sigmas) - 1, progress, "dpm_solver"):
        denoised = denoise(x, sigmas[i])
        if callback is not None:
            callback(sigmas[i], x, denoised)
        if sigmas[i + 1] == 0:
            return denoised
        h = math.log(sigmas[i] / sigmas[i + 1])
        phi_2 = math.expm1(-h) / h + 1
        x = math.exp(-h) * x - math.expm1(-h) * denoised
        if len(history) == 2:
            (d_1, h_1), (d_2, h_2) = history[-1], history[-2]
            r0, r1 = h_1 / h, h_2 / h
            d1_0, d1_1 = (denoised - d_1) / r0, (d_1 - d_2) / r1
            d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            x = x + phi_2 * d1 - (phi_2 / h - 0.5) * d2
        elif history:
            d_1, h_1 = history[-1]
            x = x + phi_2 * (denoised - d_1) / (h_1 / h)
        history = [*history[-1:], (denoised, h)]
    return x


def sample_dpmpp_2m_sde(
    denoise: Denoise, x, sigmas, *, eta=1.0, s_noise=1.0, noise=None, callback=None, progress=False
):
    """DPM-Solver++(2M) SDE (Lu et al. 2022b, App. / k-diffusion's midpoint form).

    The data-prediction SDE solved with the same second-order multistep correction as 2M:
    x_{i+1} = (σ_{i+1}/σ_i)e^{−ηh}x_i + (1−e^{−(1+η)h})x̂_0 + ½(1−e^{−(1+η)h})(x̂_0 − x̂_0')/r
    + σ_{i+1}√(1−e^{−2ηh})·z. NFE: one per level above 0.
    """
    old = h_old = None
    for i in _steps(len(sigmas) - 1, progress, "dpm_solver sde"):
        denoised = denoise(x, sigmas[i])
        if callback is not None:
            callback(sigmas[i], x, denoised)
        if sigmas[i + 1] == 0:
            return denoised
        h = math.log(sigmas[i] / sigmas[i + 1])
        eta_h = eta * h
        decay = -math.expm1(-h - eta_h)
        x = (sigmas[i + 1] / sigmas[i]) * math.exp(-eta_h) * x + decay * denoised
        if old is not None:
            x = x + 0.5 * decay * (h / h_old) * (denoised - old)
        if eta:
            x = x + sigmas[i + 1] * math.sqrt(-math.expm1(-2 * eta_h)) * s_noise * noise(x)
        old, h_old = denoised, h
    return x


def sample_unipc(denoise: Denoise, x, sigmas, *, order=2, callback=None, progress=False, **_):
    """UniPC (Zhao et al. 2023, Algorithms 2 and 3 with B(h) = e^h − 1, "bh2"), data prediction.

    Each step predicts with UniP-p (p = `order`, lower on the first and last steps) and, once the
    network has seen the new point, corrects it with UniC (order p+1) at no extra evaluation.
    NFE: one per level above 0.
    """
    models: list[tuple[float, torch.Tensor]] = []  # (λ, x̂_0) at the levels visited so far
    x_prev = k_prev = None
    for i in _steps(len(sigmas) - 1, progress, "unipc"):
        denoised = denoise(x, sigmas[i])
        if callback is not None:
            callback(sigmas[i], x, denoised)
        if models:  # UniC: x_i again, from x_{i−1}, with x̂_0 at x_i as the extra point
            x = _unipc_update(x_prev, sigmas[i - 1], sigmas[i], models, k_prev, denoised)
        models = [*models, (-math.log(sigmas[i]), denoised)][-order:]
        if sigmas[i + 1] == 0:
            return denoised
        k_prev = min(order, len(models), len(sigmas) - 1 - i)  # warm-up; lower order at the end
        x_prev, x = x, _unipc_update(x, sigmas[i], sigmas[i + 1], models, k_prev)
    return x


def _unipc_update(x, sigma_s, sigma_t, models, order, model_t=None):
    """UniP (model_t None) or UniC of `order` from level σ_s (x̂_0 = models[-1]) to σ_t."""
    lambda_s, m0 = models[-1]
    h = math.log(sigma_s / sigma_t)
    rks = [(lam - lambda_s) / h for lam, _ in models[-order:-1][::-1]]
    d1s = [(m - m0) / rk for rk, (_, m) in zip(rks, models[-order:-1][::-1], strict=True)]
    h_phi_1 = math.expm1(-h)  # hh = −h for data prediction
    b_h = h_phi_1  # bh2: B(h) = e^{hh} − 1
    h_phi_k, factorial, b = h_phi_1 / -h - 1, 1, []
    for i in range(1, order + 1):
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / -h - 1 / factorial
    nodes = torch.tensor([*rks, 1.0], dtype=torch.float64)
    r = torch.stack([nodes**p for p in range(order)])
    x_next = (sigma_t / sigma_s) * x - h_phi_1 * m0
    if model_t is None:
        if not d1s:
            return x_next
        rhos = [0.5] if order == 2 else _solve(r[:-1, :-1], b[:-1])
        return x_next - b_h * sum(rho * d for rho, d in zip(rhos, d1s, strict=True))
    rhos = [0.5] if order == 1 else _solve(r, b)
    correction = sum(rho * d for rho, d in zip(rhos[:-1], d1s, strict=True))
    return x_next - b_h * (correction + rhos[-1] * (model_t - m0))


def _solve(matrix: torch.Tensor, rhs: list[float]) -> list[float]:
    return torch.linalg.solve(matrix, torch.tensor(rhs, dtype=torch.float64)).tolist()


def _steps(count: int, progress: bool, name: str) -> Iterable[int]:
    return track(range(count), description=name, disable=not progress)
