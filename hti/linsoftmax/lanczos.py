"""Batched block Lanczos: top eigenvalues of many symmetric operators at once.

Each member b of a batch has its own symmetric positive semi-definite operator A_b on
R^dim, available only through ``matvec(V, members)``, which applies A_b to r vectors of
every member in one call: V (b, r, dim) -> (b, r, dim). Each iteration is then one call
(a few GEMMs for all members together, e.g. all c per-class Hessian blocks), instead of
c separate solver runs.

Block Lanczos with block size r, in row form V_j = X_j^T (r, dim):

    W      = A V_j                                   (one batched matvec)
    A_j    = V_j W^T                                 (r, r), symmetric
    R      = W - A_j V_j - B_{j-1} V_{j-1}
    R     -= (R Q^T) Q, twice                        (full reorthogonalization)
    R^T    = V_{j+1}^T B_j                           (QR: B_j (r, r) upper triangular)

builds an orthonormal basis Q = [V_0; V_1; ...] of the block Krylov space and the block
tridiagonal T = Q A Q^T with diagonal blocks A_j and sub-diagonal blocks B_j. Ritz values
(eigenvalues of the leading (j+1) r square of T) approximate the extreme eigenvalues of A;
the residual norm of a Ritz pair (theta, s) is ||B_j s_last|| (s_last: the last r entries
of s), and |theta - lambda| <= that norm for some eigenvalue lambda: the stopping rule. A block of r vectors
resolves eigenvalues of multiplicity up to r, so ``top_eigenvalues`` uses r = k.

Convergence is checked per member; converged members leave the batch (the basis is
compacted when a quarter of it has finished), so the cost follows the slowest members
only for as long as they need. If a residual block loses rank (an invariant subspace was
found), its missing directions are replaced by random ones orthogonal to the basis, with
zero coupling in T, which is exact. T is kept on the host in float64; vectors stay in the
operator's dtype and device.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from hti.backend import Array, get_xp, to_device, to_numpy

Matvec = Callable[[Array, Array], Array]


class LanczosResult(NamedTuple):
    """values (B, k) descending; iterations (B,) block steps used; converged (B,) bool."""

    values: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray


def _orthonormal_rows(V: Array) -> Array:
    """Rows of each V[b] (r, dim) made orthonormal by QR.  (b, r, dim) -> (b, r, dim)."""
    xp = get_xp(V)
    Qc, _ = xp.linalg.qr(V.transpose(0, 2, 1))  # (b, dim, r)
    return xp.ascontiguousarray(Qc.transpose(0, 2, 1))


class BlockLanczos:
    """The state of a batched block-Lanczos run; see the module docstring.

    Args:
        matvec: V (b, r, dim), members (b,) int (indices into the original batch)
            -> A_members V (b, r, dim).
        start: (B, r, dim) starting blocks (orthonormalized here).
        max_steps: largest number of block steps (basis capacity); capped at
            ceil(dim / r), where the basis spans the whole space and T is A in that basis.
        seed: for the random directions that replace a lost rank.
    """

    def __init__(self, matvec: Matvec, start: Array, max_steps: int, seed: int = 0):
        xp = get_xp(start)
        self.xp = xp
        self.matvec = matvec
        B, r, dim = start.shape
        self.r, self.dim = r, dim
        self.cap = max(1, min(max_steps, -(-dim // r)))  # block steps: T is complete at cap r >= dim
        self.members = np.arange(B)  # original indices of the rows still in the batch
        self.Q = xp.empty((B, min(self.cap, 8) + 1, r, dim), dtype=start.dtype)  # grows
        self.Q[:, 0] = _orthonormal_rows(start)
        self.T = np.zeros((B, self.Q.shape[1] * r, self.Q.shape[1] * r))  # grows with Q
        self.steps = 0  # block steps taken: T's leading steps*r square is complete
        self.scale = np.zeros(B)  # running max |A_j| entry: the operator's scale
        self.restarted = np.zeros(B, dtype=bool)  # lost rank in the last step (see step)
        self.restart_age = np.full(B, 1 << 30)  # steps since rank was last lost
        self.restarts = np.zeros(B, dtype=np.int64)  # how often rank was lost
        self._rng = np.random.default_rng(seed)

    def _grow(self) -> None:
        """Double the basis capacity (member-major layout: copy the used part once)."""
        xp, used = self.xp, self.steps + 1
        slots = min(self.cap, 2 * (self.Q.shape[1] - 1)) + 1
        Q = xp.empty((self.Q.shape[0], slots, self.r, self.dim), dtype=self.Q.dtype)
        Q[:, :used] = self.Q[:, :used]
        T = np.zeros((self.T.shape[0], slots * self.r, slots * self.r))
        T[:, : used * self.r, : used * self.r] = self.T[:, : used * self.r, : used * self.r]
        self.Q, self.T = Q, T

    def step(self) -> None:
        """One block step for every member still in the batch."""
        xp, j, r = self.xp, self.steps, self.r
        if j >= self.cap:
            raise RuntimeError(f"block Lanczos basis is full ({self.cap} steps)")
        if j + 1 >= self.Q.shape[1]:
            self._grow()
        V = self.Q[:, j]  # (b, r, dim)
        W = self.matvec(V, xp.asarray(self.members))  # (b, r, dim)
        A = V @ W.transpose(0, 2, 1)  # (b, r, r)
        A = (A + A.transpose(0, 2, 1)) / 2
        mul = (lambda M, U: M * U) if r == 1 else (lambda M, U: M @ U)  # (b,1,1) x (b,1,dim): broadcast
        W -= mul(A, V)
        if j > 0:
            Bprev = xp.asarray(self.T[:, j * r : (j + 1) * r, (j - 1) * r : j * r], dtype=W.dtype)
            W -= mul(Bprev, self.Q[:, j - 1])
        basis = self.Q[:, : j + 1].reshape(len(self.members), (j + 1) * r, self.dim)
        before = xp.linalg.norm(W, axis=2)  # (b, r)
        W -= (W @ basis.transpose(0, 2, 1)) @ basis  # full reorthogonalization (classical GS)
        if bool(xp.any(xp.linalg.norm(W, axis=2) < 0.7 * before)):  # DGKS: a second pass
            W -= (W @ basis.transpose(0, 2, 1)) @ basis
        A_h = to_numpy(A).astype(np.float64)
        self.scale = np.maximum(self.scale, np.abs(A_h).max(axis=(1, 2)))
        V_next, R_h, lost = self._orthonormalize(W, basis)
        # A lost rank means the Krylov space was invariant; a fresh random direction then
        # explores its complement (see top_eigenvalues for what that means for convergence).
        self.restarts += lost
        self.restart_age = np.where(lost, 0, self.restart_age + 1)
        self.restarted = lost
        self.Q[:, j + 1] = V_next
        s = slice(j * r, (j + 1) * r)
        n = slice((j + 1) * r, (j + 2) * r)
        self.T[:, s, s] = A_h
        self.T[:, n, s] = R_h
        self.T[:, s, n] = R_h.transpose(0, 2, 1)
        self.steps = j + 1

    def _orthonormalize(self, W, basis):
        """W = R^T V_next with orthonormal V_next, column by column (Gram-Schmidt, twice).

        W (b, r, dim) is already orthogonal to ``basis``. A column whose remaining norm is
        at roundoff level (100 eps times the operator's scale) is lost: its R[i, i] is 0
        (the relation stays exact) and V_next[i] is a random direction orthogonal to the
        basis and to the columns before it, so the Krylov space keeps growing. Once the
        basis spans the whole space, the remaining columns are 0. Returns
        (V_next (b, r, dim), R (b, r, r) float64 upper triangular, lost (b,) bool).
        """
        xp, r = self.xp, self.r
        b = W.shape[0]
        R = xp.zeros((b, r, r), dtype=W.dtype)
        V = xp.empty_like(W)
        threshold = xp.asarray(100 * np.finfo(W.dtype).eps * self.scale, dtype=W.dtype)  # (b,)
        lost_any = np.zeros(b, dtype=bool)
        for i in range(r):
            v = W[:, i]  # (b, dim)
            for _ in range(2 if i else 0):
                h = (V[:, :i] @ v[:, :, None])[:, :, 0]  # (b, i)
                R[:, :i, i] += h
                v = v - (h[:, None, :] @ V[:, :i])[:, 0]
            norm = xp.linalg.norm(v, axis=1)  # (b,)
            lost = norm <= threshold
            lost_h = to_numpy(lost)
            if basis.shape[1] + i >= self.dim:  # the space is exhausted: no direction is left
                R[:, i, i] = 0
                V[:, i] = 0
                continue
            if lost_h.any():
                fresh = to_device(self._rng.standard_normal(v.shape).astype(W.dtype), xp)
                others = xp.concatenate([basis, V[:, :i]], axis=1)
                for _ in range(2):
                    fresh = fresh - ((others @ fresh[:, :, None]).transpose(0, 2, 1) @ others)[:, 0]
                fresh /= xp.linalg.norm(fresh, axis=1, keepdims=True)
                v = xp.where(lost[:, None], fresh, v / xp.maximum(norm, xp.finfo(W.dtype).tiny)[:, None])
                norm = xp.where(lost, 0, norm)
                lost_any |= lost_h
            else:
                v = v / norm[:, None]
            R[:, i, i] = norm
            V[:, i] = v
        return V, to_numpy(R).astype(np.float64), lost_any

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (b, m) ascending and their residual norms (b, m), m = steps * r.

        For a Ritz pair (theta, y) of A, ||A y - theta y|| = ||B_j s_last||, and some
        eigenvalue lies within that distance of theta (Bauer-Fike for symmetric A).
        """
        m, r = self.steps * self.r, self.r
        theta, S = np.linalg.eigh(self.T[:, :m, :m])
        Bj = self.T[:, m : m + r, m - r : m]  # (b, r, r)
        return theta, np.linalg.norm(Bj @ S[:, m - r :, :], axis=1)

    def keep(self, rows: np.ndarray) -> None:
        """Keep only these rows (positions in the current batch); copies the used basis."""
        used, slots = self.steps + 1, self.Q.shape[1]  # keep the capacity, copy the used part
        Q = self.xp.empty((len(rows), slots, self.r, self.dim), dtype=self.Q.dtype)
        Q[:, :used] = self.Q[self.xp.asarray(rows), :used]
        self.members, self.Q = self.members[rows], Q
        self.T = self.T[rows]
        self.scale = self.scale[rows]
        self.restarted = self.restarted[rows]
        self.restart_age = self.restart_age[rows]
        self.restarts = self.restarts[rows]


DENSE_DIM = 32  # operators this small are formed and diagonalized instead
RESTART_STEPS = 4  # steps a fresh direction is explored before convergence can be claimed


def top_eigenvalues(
    matvec: Matvec,
    start: Array,
    k: int = 1,
    *,
    tol: float | None = None,
    max_steps: int = 300,
    traces: np.ndarray | None = None,
    seed: int = 0,
) -> LanczosResult:
    """The k largest eigenvalues of each member's operator, by block Lanczos with r = k.

    A member has converged when, for each of its top k Ritz values theta_i (residual
    norm rho_i, see :meth:`BlockLanczos.ritz`), a rigorous bound holds: rho_i <= tol
    theta_1, or (k = 1, with ``traces``) Temple's bound below is <= tol theta_1. (An
    error estimate of the Kato-Temple kind, rho^2 / gap with the gap to the next Ritz
    value, converges faster but was measured to stop on lambda_2 for 1-3 of 255 blocks
    when the top two eigenvalues are 1.5% apart: hti does not use it.) The eigenvalue
    error is then at most tol theta_1 and in practice about rho^2 / gap, far smaller.

    Further, if its Krylov space was ever found exactly invariant (a lost rank: those
    Ritz pairs have zero residual whether or not the top eigenvalue is among them), the
    fresh random direction that continues it must have been explored for RESTART_STEPS
    steps or have become invariant in turn. In the latter case its Krylov space holds the
    top eigenvalue of A on the complement of the first one (a random vector has a
    component along it), so the largest Ritz values are exact. Once the basis spans the
    whole space the Ritz values are the eigenvalues.

    With ``traces`` (B,), the traces of the (PSD) operators, and k = 1: every eigenvalue
    is >= 0, so lambda_2 <= t - lambda_1 <= t - theta_1, and Temple's inequality gives
    lambda_1 - theta_1 <= rho^2 / (2 theta_1 - t) whenever theta_1 > t / 2. When the top
    eigenvalue holds most of the trace (correlated inputs) this certifies it in one or two
    steps.

    Default tol: 1e-4 for float32 vectors (the relative error hti promises), 1e-10 for
    float64. Operators of dimension <= DENSE_DIM (or too small for k-blocks) are
    formed with ``matvec`` and diagonalized exactly.

    Args:
        matvec: see :class:`BlockLanczos`.
        start: (B, dim) or (B, k, dim) starting vectors (random directions are added
            when fewer than k are given).
    Returns:
        :class:`LanczosResult` with values (B, k), descending.
    """
    xp = get_xp(start)
    if start.ndim == 2:
        start = start[:, None, :]
    B, given, dim = start.shape
    if not 1 <= k <= dim:
        raise ValueError(f"k must be in [1, dim = {dim}]; got {k}")
    if dim <= max(DENSE_DIM, 4 * k):
        return _dense_top(matvec, B, k, dim, start.dtype, xp)
    if given < k:
        noise = np.random.default_rng(seed).standard_normal((B, k - given, dim))
        scale = xp.linalg.norm(start, axis=2, keepdims=True).mean(axis=1, keepdims=True)
        start = xp.concatenate([start, to_device(noise.astype(start.dtype), xp) * scale / np.sqrt(dim)], axis=1)
    start = start[:, :k]
    if tol is None:
        tol = 1e-4 if start.dtype == np.float32 else 1e-10
    lz = BlockLanczos(matvec, start, max_steps, seed)
    values = np.full((B, k), np.nan)
    iterations = np.zeros(B, dtype=np.int64)
    converged = np.zeros(B, dtype=bool)
    recorded = np.zeros(B, dtype=bool)
    next_check = 1
    while True:
        lz.step()
        full = lz.steps >= lz.cap
        if lz.steps < next_check and not full:
            continue
        next_check = lz.steps + max(1, lz.steps // 32)  # checks get rarer as T grows
        theta, resid = lz.ritz()
        top, top_res = theta[:, ::-1][:, :k], resid[:, ::-1][:, :k]
        bound = tol * np.maximum(top[:, :1], 0)
        within = top_res <= bound
        if traces is not None and k == 1:  # Temple's bound with lambda_2 <= t - theta_1
            margin = 2 * top[:, 0] - traces[lz.members]
            with np.errstate(divide="ignore", invalid="ignore"):
                temple = np.where(margin > 0, top_res[:, 0] ** 2 / margin, np.inf)
            within |= (temple <= bound[:, 0])[:, None]
        ok = within.all(axis=1)
        ok &= (lz.restarts >= 2) | (lz.restart_age >= RESTART_STEPS)
        ok = (ok & (theta.shape[1] >= k)) | (lz.steps * lz.r >= dim)
        new = (ok | full) & ~recorded[lz.members]
        idx = lz.members[new]
        values[idx], iterations[idx], converged[idx] = top[new], lz.steps, ok[new]
        recorded[idx] = True
        if recorded.all():
            return LanczosResult(values, iterations, converged)
        done = recorded[lz.members]
        if done.sum() * 8 >= len(done):  # compact once an eighth of the batch is done
            lz.keep(np.nonzero(~done)[0])


def _dense_top(matvec: Matvec, B: int, k: int, dim: int, dtype, xp) -> LanczosResult:
    """Form each small operator with one matvec on the identity and diagonalize it."""
    eye = xp.broadcast_to(xp.eye(dim, dtype=dtype), (B, dim, dim))
    A = to_numpy(matvec(xp.ascontiguousarray(eye), xp.arange(B))).astype(np.float64)  # (B, dim, dim)
    values = np.linalg.eigvalsh((A + A.transpose(0, 2, 1)) / 2)[:, ::-1][:, :k]
    return LanczosResult(values, np.zeros(B, dtype=np.int64), np.ones(B, dtype=bool))
