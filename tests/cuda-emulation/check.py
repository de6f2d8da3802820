# The kernels of logprob.cu, sequence.cu and rl.cu under the CPU emulation (see run.sh), driven by a transliteration of
# the CUDA backend's host logic (src/Engine.Cuda/CudaBackend.LogProbs.cs and CudaBackend.Rl.cs: chunk loops, launch
# shapes, scratch layout) and compared with double-precision numpy references of the CPU backend's semantics. Outputs
# start as NaN and masked-out inputs hold NaN, as in the conformance suite. Exit code 1 when any comparison fails.
import ctypes as C, numpy as np, os, sys
lib = C.CDLL(os.environ["ENGINE_EMULATED_KERNELS"])
P = lambda a: None if a is None else C.c_void_p(a.ctypes.data)
I, L, F = C.c_int32, C.c_int64, C.c_float
def call(name, g, b, *args):
    conv = []
    for a in args:
        if isinstance(a, np.ndarray) or a is None: conv.append(P(a))
        elif isinstance(a, tuple): conv.append(a[0](a[1]))
        else: raise TypeError(a)
    getattr(lib, "run_" + name)(C.c_uint(g), C.c_uint(b), *conv)
def rel(ref, got):
    ref = np.asarray(ref, np.float64).ravel(); got = np.asarray(got, np.float64).ravel()
    if not np.all(np.isfinite(got)): return np.inf
    d = np.linalg.norm(got - ref); n = np.linalg.norm(ref)
    return 0.0 if d == 0 else d / max(n, 1e-30)
fails = 0
def check(what, ref, got, tol):
    global fails
    e = rel(ref, got); ok = e <= tol
    if not ok: fails += 1
    print(f"{what}: {e:.2e} {'ok' if ok else 'FAIL'}")
rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
f32 = lambda a: np.ascontiguousarray(a, np.float32)
err = np.zeros(4, np.int32)

# ------------------------------------------------------------------ log-probs reference (double)
def ref_logprobs(x, y, m, r, tau, gl, ge, gk):
    z = x.astype(np.float64) / tau; n, v = z.shape
    act = (y >= 0) & (m != 0)
    mx = z.max(1, keepdims=True); e = np.exp(z - mx); s = e.sum(1)
    lse = mx[:, 0] + np.log(s); p = e / s[:, None]; H = lse - (p * z).sum(1)
    yy = np.where(act, y, 0); logp = z[np.arange(n), yy] - lse
    d = logp - r
    klv = np.stack([d, 0.5 * d * d, np.exp(-d) + d - 1], 1)
    g = gl + gk[:, 0] + gk[:, 1] * d + gk[:, 2] * (1 - np.exp(-d))
    # dz/dz' of L = g·logp + ge·H, masked: ∂logp/∂z = onehot − p; ∂H/∂z = −p∘(z − lse + H) ... chain with 1/τ
    onehot = np.zeros_like(z); onehot[np.arange(n), yy] = 1
    u = z - lse[:, None]
    dz = (g * m)[:, None] * (onehot - p) + (ge * m)[:, None] * (-p * (u + H[:, None]))
    dz /= tau
    A = act.astype(np.float64)
    out = dict(logp=A * m * logp, stats=np.stack([A * lse, A * H], 1), H=A * m * H, kl=(A * m)[:, None] * klv, dz=A[:, None] * dz)
    return out

def inputs(n, v):
    y = rng.integers(0, v, n).astype(np.int32); y[3::5] = -1
    m = np.ones(n, np.float32); m[6::7] = 0; m[10::11] = 0.5
    r = f32(rng.uniform(-np.log(v) - 1, -np.log(v) + 1, n))
    return y, m, r

def threads(cols): return 512 if cols >= 4096 else 128

def head(forward, backward, h, w, y, m, r, tau, gl, ge, gk, rowstats_in, rows_chunk, vchunk, fused_rowstats=True):
    n, c = h.shape; v = w.shape[0]; invT = np.float32(1 / np.float32(tau))
    logp = np.full(n, np.nan, np.float32); rs = np.full((n, 2), np.nan, np.float32); H = np.full(n, np.nan, np.float32); kl = np.full((n, 3), np.nan, np.float32)
    dh = np.zeros((n, c), np.float32); dw = np.zeros((v, c), np.float32)
    z = np.zeros(rows_chunk * vchunk, np.float32); state = np.zeros(rows_chunk * 4); coef = np.zeros(rows_chunk * 4, np.float32)
    single = vchunk >= v
    for r0 in range(0, n, rows_chunk):
        rows = min(rows_chunk, n - r0)
        if forward:
            for v0 in range(0, v, vchunk):
                vc = min(vchunk, v - v0)
                z[:rows * vc] = (h[r0:r0 + rows] @ w[v0:v0 + vc].T).ravel()
                call("logprob_chunk_stats", rows, threads(vc), state, z, (I, vc), (L, r0), (I, v0), (I, vc), (I, v), y, m, (F, invT), err)
            co = backward
            call("logprob_finish", (rows + 255) // 256, 256, logp, rs if fused_rowstats else None, H, kl, coef if co else None, state, (L, r0), (I, rows), (I, v),
                 y, m, r, gl if co else None, ge if co else None, gk if co else None, (F, invT))
        else:
            call("logprob_backward_rows", (rows + 7) // 8, 256, coef, rowstats_in, h, w, None, (L, r0), (I, rows), (I, c), (I, v), y, m, r, gl, ge, gk, (F, invT), err)
        if not backward: continue
        for v0 in range(0, v, vchunk):
            vc = min(vchunk, v - v0)
            if not (forward and single):
                z[:rows * vc] = (h[r0:r0 + rows] @ w[v0:v0 + vc].T).ravel()
            call("logprob_chunk_grad", rows, threads(vc), z, z, (I, vc), coef, (L, r0), (I, v0), (I, vc), (I, v), y, m, (F, invT), (I, 0))
            dz = z[:rows * vc].reshape(rows, vc)
            dh[r0:r0 + rows] += dz @ w[v0:v0 + vc]
            dw[v0:v0 + vc] += dz.T @ h[r0:r0 + rows]
    return logp, rs, H, kl, dh, dw

for (n, c, v, tau, rc, vcn) in [(37, 24, 100, 1.0, 37, 100), (37, 24, 100, 0.7, 16, 96), (9, 16, 5000, 1.3, 9, 5000), (9, 16, 5000, 1.3, 4, 1500)]:
    tag = f"N={n} C={c} V={v} tau={tau} chunks={rc}x{vcn}"
    h = f32(rng.uniform(-2, 2, (n, c))); w = f32(rng.uniform(-2 / np.sqrt(c), 2 / np.sqrt(c), (v, c)))
    y, m, r = inputs(n, v)
    gl = f32(rng.uniform(-1, 1, n)); ge = f32(rng.uniform(-1, 1, n)); gk = f32(rng.uniform(-1, 1, (n, 3)))
    x = h.astype(np.float64) @ w.astype(np.float64).T
    ref = ref_logprobs(x, y, m, r.astype(np.float64), tau, gl, ge, gk.astype(np.float64))
    dhr = ref["dz"] @ w; dwr = ref["dz"].T @ h
    lp, rs, H, kl, _, _ = head(True, False, h, w, y, m, r, tau, gl, ge, gk, None, rc, vcn)
    check(f"fwd logp {tag}", ref["logp"], lp, 1e-5); check(f"fwd stats {tag}", ref["stats"], rs, 1e-5)
    check(f"fwd H {tag}", ref["H"], H, 1e-5); check(f"fwd kl {tag}", ref["kl"], kl, 1e-5)
    _, _, _, _, dh, dw = head(False, True, h, w, y, m, r, tau, gl, ge, gk, rs, rc, vcn)
    check(f"bwd dh {tag}", dhr, dh, 1e-5); check(f"bwd dW {tag}", dwr, dw, 1e-5)
    lp2, _, H2, kl2, dh2, dw2 = head(True, True, h, w, y, m, r, tau, gl, ge, gk, None, rc, vcn, fused_rowstats=False)
    check(f"fused logp {tag}", ref["logp"], lp2, 1e-5); check(f"fused kl {tag}", ref["kl"], kl2, 1e-5)
    check(f"fused dh {tag}", dhr, dh2, 1e-5); check(f"fused dW {tag}", dwr, dw2, 1e-5)

# from logits
for (n, v, tau) in [(45, 1000, 1.0), (7, 9000, 0.8)]:
    logits = f32(rng.uniform(-8, 8, (n, v))); y, m, r = inputs(n, v)
    gl = f32(rng.uniform(-1, 1, n)); ge = f32(rng.uniform(-1, 1, n)); gk = f32(rng.uniform(-1, 1, (n, 3)))
    ref = ref_logprobs(logits.astype(np.float64), y, m, r.astype(np.float64), tau, gl, ge, gk.astype(np.float64))
    invT = np.float32(1 / np.float32(tau)); state = np.zeros(n * 4)
    lp = np.full(n, np.nan, np.float32); rs = np.full((n, 2), np.nan, np.float32); H = np.full(n, np.nan, np.float32); kl = np.full((n, 3), np.nan, np.float32)
    call("logprob_chunk_stats", n, threads(v), state, logits, (I, v), (L, 0), (I, 0), (I, v), (I, v), y, m, (F, invT), err)
    call("logprob_finish", (n + 255) // 256, 256, lp, rs, H, kl, None, state, (L, 0), (I, n), (I, v), y, m, r, None, None, None, (F, invT))
    tag = f"from logits N={n} V={v}"
    check(f"{tag} logp", ref["logp"], lp, 1e-5); check(f"{tag} stats", ref["stats"], rs, 1e-5); check(f"{tag} H", ref["H"], H, 1e-5); check(f"{tag} kl", ref["kl"], kl, 1e-5)
    g0 = f32(rng.uniform(-1, 1, (n, v))); dl = g0.copy(); coef = np.zeros(n * 4, np.float32)
    call("logprob_backward_rows", (n + 7) // 8, 256, coef, rs, None, None, logits, (L, 0), (I, n), (I, 0), (I, v), y, m, r, gl, ge, gk, (F, invT), err)
    call("logprob_chunk_grad", n, threads(v), dl, logits, (I, v), coef, (L, 0), (I, 0), (I, v), (I, v), y, m, (F, invT), (I, 1))
    check(f"{tag} dlogits", g0 + ref["dz"], dl, 1e-6)

# target out of range
y = np.array([0, 5, 1], np.int32); state = np.zeros(12); lg = f32(rng.uniform(-1, 1, (3, 4)))
call("logprob_chunk_stats", 3, 128, state, lg, (I, 4), (L, 0), (I, 0), (I, 4), (I, 4), y, None, (F, 1.0), err)
print("error word after bad target:", err[:3].tolist(), "ok" if err[0] == 3 and err[1] == 1 and err[2] == 5 else "FAIL"); fails += not (err[0] == 3 and err[1] == 1 and err[2] == 5); err[:] = 0

# ------------------------------------------------------------------ sequences
def ragged(b, t):
    m = np.zeros((b, t), np.float32)
    for row in range(1, b):
        s = rng.integers(0, t); ln = 1 if row == 1 else 1 + rng.integers(0, t - s); m[row, s:s + ln] = 1
    return m
b, t = 9, 70; m = ragged(b, t); vals = f32(rng.uniform(-3, 3, (b, t))); vp = np.where(m == 0, np.nan, vals).astype(np.float32)
for mean in (0, 1):
    out = np.full(b, np.nan, np.float32); call("sequence_sum", (b + 7) // 8, 256, out, vp, m, (I, b), (I, t), (I, mean))
    cnt = m.sum(1); s = (np.nan_to_num(vp) * m).sum(1); refo = np.where(cnt == 0, 0, s / np.maximum(cnt, 1)) if mean else s
    check(f"sequence sum mean={mean}", refo, out, 1e-6)
    out2 = np.full(b, np.nan, np.float32); call("sequence_sum", (b + 7) // 8, 256, out2, vals, None, (I, b), (I, t), (I, mean))
    check(f"sequence sum nomask mean={mean}", vals.mean(1) if mean else vals.sum(1), out2, 1e-6)
    g = f32(rng.uniform(-1, 1, b)); dv0 = f32(rng.uniform(-1, 1, (b, t))); dv = dv0.copy()
    call("sequence_sum_backward", (b + 7) // 8, 256, dv, g, m, (I, b), (I, t), (I, mean))
    gg = np.where(cnt == 0, 0, g / np.maximum(cnt, 1)) if mean else g
    check(f"sequence sum backward mean={mean}", dv0 + gg[:, None] * m, dv, 1e-6)

# ------------------------------------------------------------------ GAE
for (b, t, gamma, lam) in [(7, 33, 1.0, 0.95), (40, 129, 0.99, 0.9)]:
    m = ragged(b, t); rw = f32(rng.uniform(-1, 1, (b, t))); vv = f32(rng.uniform(-2, 2, (b, t)))
    adv = np.full((b, t), np.nan, np.float32); ret = np.full((b, t), np.nan, np.float32)
    call("gae", (b + 127) // 128, 128, adv, ret, np.where(m == 0, np.nan, rw).astype(np.float32), np.where(m == 0, np.nan, vv).astype(np.float32), m, (I, b), (I, t), (F, gamma), (F, lam))
    ra = np.zeros((b, t)); rr = np.zeros((b, t))
    for i in range(b):
        nv = na = 0.0
        for k in range(t - 1, -1, -1):
            if m[i, k] == 0: continue
            a = rw[i, k] + np.float64(np.float32(gamma)) * nv - vv[i, k] + np.float64(np.float32(gamma)) * np.float64(np.float32(lam)) * na
            ra[i, k] = a; rr[i, k] = a + vv[i, k]; nv = vv[i, k]; na = a
    check(f"gae adv B={b}", ra, adv, 1e-6); check(f"gae ret B={b}", rr, ret, 1e-6)

# ------------------------------------------------------------------ whitening
def slices(n):
    blocks = min(max((n + 4095) // 4096, 1), 1024); per = (n + blocks - 1) // blocks; return (n + per - 1) // per, per
for (b, t) in [(13, 57), (64, 1601)]:
    m = ragged(b, t).ravel(); x = f32(rng.uniform(-2, 5, b * t)); n = b * t
    for shift in (1, 0):
        xv = np.where(m == 0, np.nan, x).astype(np.float32); blocks, per = slices(n)
        part = np.zeros(blocks * 3); res = np.zeros(6)
        call("masked_moments_partials", blocks, 256, part, xv, m, (L, n), (L, per))
        call("masked_whiten_fold", 1, 1, res, part, (I, blocks), (F, 1e-8), (I, shift))
        call("masked_whiten_apply", (n + 255) // 256, 256, xv, m, res, (L, n))
        sel = m != 0; mu = x[sel].astype(np.float64).mean(); var = x[sel].astype(np.float64).var(ddof=1)
        refx = np.where(sel, (x - mu) / np.sqrt(var + 1e-8) + (0 if shift else mu), 0)
        check(f"whiten x {b}x{t} shift={shift} (blocks {blocks})", refx, xv, 1e-5)
        check(f"whiten moments {b}x{t}", [mu, var, sel.sum()], res[:3], 1e-9)

# ------------------------------------------------------------------ PPO
for (b, t, withv) in [(3, 11, True), (48, 600, True), (20, 301, False)]:
    n = b * t; m = ragged(b, t).ravel(); old = f32(rng.uniform(-6, -0.1, n)); lp = f32(old + 0.6 * (rng.random(n) - 0.5))
    A = f32(rng.uniform(-2, 2, n)); ent = f32(rng.uniform(0, 4, n)); V = f32(rng.uniform(-1, 1, n)); Vo = f32(rng.uniform(-1, 1, n)); R = f32(rng.uniform(-1.5, 1.5, n))
    pz = lambda a: np.where(m == 0, np.nan, a).astype(np.float32)
    g0 = f32(rng.uniform(-1, 1, n)); gv0 = f32(rng.uniform(-1, 1, n)); g = g0.copy(); gv = gv0.copy()
    blocks, per = slices(n); cnt = np.zeros(blocks); part = np.zeros(blocks * 12); res = np.zeros(9, np.float32)
    eps, epsv, ps, vs = 0.2, 0.3, 0.5, 0.25
    call("ppo_count_partials", blocks, 256, cnt, m, (L, n), (L, per))
    call("ppo_partials", blocks, 256, part, cnt, pz(lp), pz(old), pz(A), m, pz(V) if withv else None, pz(Vo) if withv else None, pz(R) if withv else None, pz(ent),
         g, gv if withv else None, (L, n), (L, per), (F, 1 - eps), (F, 1 + eps), (F, epsv), (F, ps), (F, vs))
    call("ppo_fold", 1, 1, res, part, (I, blocks), (I, int(withv)), (I, 1))
    s = m != 0; tok = s.sum(); lr = (lp - old).astype(np.float64); rho = np.exp(lr)
    un = -A * rho; cl = -A * np.clip(rho, 1 - eps, 1 + eps); clipped = cl > un
    pol = np.where(clipped, cl, un)
    refg = g0 + np.where(s & ~clipped, ps / tok * un, 0)
    check(f"ppo dlogp {b}x{t}", refg, g, 1e-5)
    st = [pol[s].mean(), 0, clipped[s].mean(), 0.5 * (lr[s] ** 2).mean(), ent[s].mean(), 0, 0, rho[s].mean(), tok]
    if withv:
        vcl = np.clip(V, Vo - epsv, Vo + epsv); lu = (V - R) ** 2; lc = (vcl - R) ** 2; vclip = lc > lu
        st[1] = 0.5 * np.maximum(lu, lc)[s].mean(); st[6] = vclip[s].mean(); st[5] = 1 - np.var((R - V)[s].astype(np.float64)) / np.var(R[s].astype(np.float64))
        check(f"ppo dvalues {b}x{t}", gv0 + np.where(s & ~vclip, vs / tok * (V - R), 0), gv, 1e-5)
    for k, name in enumerate(["policy", "value", "clipfrac", "approxkl", "entropy", "ev", "vclipfrac", "ratio", "tokens"]):
        check(f"ppo {name} {b}x{t}", [st[k]], [res[k]], 1e-5) if abs(st[k]) > 1e-3 else check(f"ppo {name} {b}x{t} (abs)", [1.0], [1.0 + res[k] - st[k]], 1e-5)

# ------------------------------------------------------------------ KL rewards
for (b, t, eos) in [(9, 50, True), (33, 257, False)]:
    m = ragged(b, t); kl = f32(rng.uniform(-0.5, 2, (b, t))); sc = f32(rng.uniform(-3, 3, b)); ended = rng.integers(0, 2, b).astype(np.int32)
    rw = np.full((b, t), np.nan, np.float32); part = np.zeros(b * 4); res = np.zeros(4, np.float32)
    call("kl_rewards_rows", (b + 7) // 8, 256, rw, part, np.where(m == 0, np.nan, kl).astype(np.float32), m, sc, ended if eos else None, (I, b), (I, t), (F, 0.05), (F, -1.0))
    call("kl_rewards_fold", 1, 256, res, part, (I, b))
    refr = np.where(m != 0, -np.float32(0.05) * kl, 0).astype(np.float64); seqs = 0; kls = scs = miss = 0.0
    for i in range(b):
        idx = np.nonzero(m[i])[0]
        if len(idx) == 0: continue
        mis = eos and ended[i] == 0; score = sc[i] + (-1.0 if mis else 0.0)
        refr[i, idx[-1]] += score; seqs += 1; kls += (kl[i] * m[i]).sum(); scs += score; miss += mis
    check(f"kl rewards {b}x{t}", refr, rw, 1e-6)
    check(f"kl stats {b}x{t}", [kls / seqs, scs / seqs, miss / seqs + 1, seqs], [res[0], res[1], res[2] + 1, res[3]], 1e-6)

# ------------------------------------------------------------------ pairwise
R_, P_ = 40, 90
ch = rng.integers(0, R_, P_).astype(np.int32); rj = rng.integers(0, R_, P_).astype(np.int32)
sc = f32(rng.uniform(-3, 3, R_)); wt = f32(rng.uniform(0, 1, P_)); mu = f32(rng.uniform(0, 0.5, P_))
def softplus(z): return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
def sig(z): return 1 / (1 + np.exp(-z))
for (typ, eps, beta, cen, gs, weighted) in [(0, 0, 0.1, 0, 1, False), (0, 0.1, 0.1, 0.01, 0.5, True), (1, 0.2, 0.1, 0, 1, True), (2, 0, 0.1, 0, 1, True), (3, 0, 0.5, 0, 1, False)]:
    w = wt.astype(np.float64) if weighted else np.ones(P_); mm = mu.astype(np.float64) if weighted else np.zeros(P_)
    s_c = sc[ch].astype(np.float64); s_l = sc[rj].astype(np.float64); x = s_c - s_l - mm
    if typ == 0: l = (1 - eps) * softplus(-x) + eps * softplus(x); dl = -(1 - eps) * sig(-x) + eps * sig(x)
    elif typ == 1: l = ((1 - eps) * softplus(-x) - eps * softplus(x)) / (1 - 2 * eps); dl = (-(1 - eps) * sig(-x) - eps * sig(x)) / (1 - 2 * eps)
    elif typ == 2: l = np.maximum(0, 1 - x); dl = np.where(1 - x > 0, -1.0, 0.0)
    else: d = x - 1 / (2 * beta); l = d * d; dl = 2 * d
    W = w.sum(); both = s_c + s_l; cterm = cen * (w * both * both).sum() / W
    g0 = f32(rng.uniform(-1, 1, R_)); grad = g0.copy(); refg = g0.astype(np.float64).copy()
    for p in range(P_):
        cg = 2 * cen * both[p]; refg[ch[p]] += gs / W * w[p] * (dl[p] + cg); refg[rj[p]] += gs / W * w[p] * (cg - dl[p])
    pg = np.zeros(2 * P_, np.float32); res = np.zeros(8, np.float32)
    call("pairwise_pairs", 1, 512, pg, res, sc, ch, rj, wt if weighted else None, mu if weighted else None, (I, P_), (I, R_), (I, typ), (F, eps), (F, beta), (F, cen), (F, gs), (I, 1), err)
    call("pairwise_scatter", (R_ + 255) // 256, 256, grad, pg, res, ch, rj, (I, P_), (I, R_))
    check(f"pairwise type {typ} grad", refg, grad, 1e-6)
    check(f"pairwise type {typ} stats", [(w * l).sum() / W + cterm, cterm + 1, (w * (x > 0)).sum() / W, (w * (s_c - s_l)).sum() / W, (w * s_c).sum() / W, (w * s_l).sum() / W, W, 1],
          [res[0], res[1] + 1, res[2], res[3], res[4], res[5], res[6], res[7]], 1e-6)
bad = ch.copy(); bad[17] = R_ + 3; bad[50] = -2; grad = g0.copy(); pg = np.zeros(2 * P_, np.float32); res = np.full(8, 7, np.float32)
call("pairwise_pairs", 1, 512, pg, res, sc, bad, rj, None, None, (I, P_), (I, R_), (I, 0), (F, 0), (F, 0.1), (F, 0), (F, 1), (I, 1), err)
call("pairwise_scatter", 1, 256, grad, pg, res, bad, rj, (I, P_), (I, R_))
ok = err[0] == 4 and err[1] == 17 and err[2] == R_ + 3 and np.array_equal(grad, g0) and not res.any()
print("bad pair index:", err[:3].tolist(), "gradient untouched" if np.array_equal(grad, g0) else "gradient CHANGED", "ok" if ok else "FAIL"); fails += not ok
print("FAILURES:", fails)
sys.exit(1 if fails else 0)
