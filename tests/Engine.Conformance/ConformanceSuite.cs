using Engine.Core.Backends;

namespace Engine.Conformance;

/// <summary>One op family's check: runs on a <see cref="BackendPair"/> with a seed and reports every compared output.</summary>
/// <param name="Name">Case name (stable, used as the xunit theory data).</param>
/// <param name="Run">The check.</param>
public sealed record ConformanceCase(string Name, Func<BackendPair, int, IReadOnlyList<ConformanceResult>> Run)
{
    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>
/// The conformance suite of the kernel contract: every op, forward and backward, on random inputs, the candidate
/// backend against the reference. Outputs are NaN-poisoned before forward ops; gradients start from the same random
/// values on both sides, so "backward adds into gradients" is checked too. Tolerances are relative (‖Δ‖/‖ref‖) and
/// sized for fp32 with a different summation order.
/// </summary>
public static partial class ConformanceSuite
{
    private const double Exact = 1e-6;
    private const double Reduction = 1e-5;
    private const double Long = 5e-5;

    /// <summary>Every case, in contract order.</summary>
    public static IReadOnlyList<ConformanceCase> Cases { get; } =
    [
        new("elementwise", Elementwise),
        new("gemm", Gemm),
        new("matmul", Matmul),
        new("embedding", Embedding),
        new("layernorm", LayerNorm),
        new("rmsnorm", RmsNorm),
        new("gelu", Gelu),
        new("swiglu", SwiGlu),
        new("dropout", Dropout),
        new("rope", Rope),
        new("attention", Attention),
        new("attention_packed", AttentionPacked),
        new("attention_decode", AttentionDecode),
        new("cross_entropy", CrossEntropy),
        new("adamw", AdamW),
        new("squared_norm", SquaredNorm),
        new("token_logprobs", TokenLogProbs),
        new("token_logprobs_from_logits", TokenLogProbsFromLogits),
        new("sequence_sum", SequenceSum),
        new("gae", Gae),
        new("masked_whiten", MaskedWhiten),
        new("pairwise_loss", PairwiseLoss),
        new("preference_loss", PreferenceLoss),
        new("ppo_losses", PpoLosses),
        new("kl_rewards", KlRewards),
        new("group_advantages", GroupAdvantages),
        new("grpo_loss", GrpoLoss),
    ];

    /// <summary>A case by name.</summary>
    public static ConformanceCase Get(string name) => Cases.Single(c => c.Name == name);

    private static float[] Random(Random rng, long length, float lo = -1f, float hi = 1f)
    {
        var a = new float[length];
        for (long i = 0; i < length; i++)
        {
            a[i] = lo + ((hi - lo) * (float)rng.NextDouble());
        }

        return a;
    }

    private static List<ConformanceResult> Elementwise(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (int n in new[] { 1, 1000, 100_003 })
        {
            var a = p.Upload(Random(rng, n), n);
            var b = p.Upload(Random(rng, n), n);
            var output = p.Poisoned(n);
            p.Run((be, x) => be.Add(x(output), x(a), x(b)));
            results.Add(p.Compare($"add n={n}", output, Exact));

            p.Run((be, x) => be.Accumulate(x(output), x(a)));
            results.Add(p.Compare($"accumulate n={n}", output, Exact));

            p.Run((be, x) => be.Scale(x(output), 0.37f));
            results.Add(p.Compare($"scale n={n}", output, Exact));

            var copy = p.Poisoned(n);
            p.Run((be, x) => be.Copy(x(copy), x(a)));
            results.Add(p.Compare($"copy n={n}", copy, 0));

            p.Run((be, x) => be.Fill(x(copy), -2.5f));
            results.Add(p.Compare($"fill n={n}", copy, 0));

            p.Run((be, x) => be.Zero(x(copy)));
            results.Add(p.Compare($"zero n={n}", copy, 0));
        }

        ColumnBlocks(p, rng, results);

        return results;
    }

    // A block of columns gathered out of a wide matrix, then added back at another column.
    private static void ColumnBlocks(BackendPair p, Random rng, List<ConformanceResult> results)
    {
        foreach (var (rows, wide, width) in new[] { (1, 5, 2), (37, 96, 24), (300, 1152, 128) })
        {
            var source = p.Upload(Random(rng, rows * wide), rows, wide);
            var block = p.Poisoned(rows, width);
            p.Run((be, x) => be.CopyColumns(x(block), 0, x(source), wide - width - 1 >= 0 ? 1 : 0, width, accumulate: false));
            results.Add(p.Compare($"copy_columns gather {rows}x{wide} w={width}", block, 0));

            var target = p.Upload(Random(rng, rows * wide), rows, wide);
            p.Run((be, x) => be.CopyColumns(x(target), wide - width, x(block), 0, width, accumulate: true));
            results.Add(p.Compare($"copy_columns accumulate {rows}x{wide} w={width}", target, Exact));
        }
    }

    private static List<ConformanceResult> Gemm(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (var (m, n, k) in new[] { (37, 53, 71), (128, 96, 64), (1, 300, 17) })
        {
            foreach (bool ta in new[] { false, true })
            {
                foreach (bool tb in new[] { false, true })
                {
                    var a = p.Upload(Random(rng, m * k), ta ? k : m, ta ? m : k);
                    var b = p.Upload(Random(rng, k * n), tb ? n : k, tb ? k : n);
                    var c = p.Poisoned(m, n);
                    p.Run((be, x) => be.Gemm(x(c), x(a), x(b), ta, tb));
                    results.Add(p.Compare($"gemm {m}x{n}x{k} tA={ta} tB={tb}", c, Reduction));

                    var acc = p.Upload(Random(rng, m * n), m, n);
                    p.Run((be, x) => be.Gemm(x(acc), x(a), x(b), ta, tb, alpha: 0.5f, beta: -1.25f));
                    results.Add(p.Compare($"gemm {m}x{n}x{k} tA={ta} tB={tb} α=0.5 β=-1.25", acc, Reduction));
                }
            }
        }

        return results;
    }

    private static List<ConformanceResult> Matmul(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        const int n = 70, c = 48, oc = 100;
        foreach (var layout in new[] { WeightLayout.OutIn, WeightLayout.InOut })
        {
            long[] wDims = layout == WeightLayout.OutIn ? [oc, c] : [c, oc];
            var input = p.Upload(Random(rng, n * c), 2, n / 2, c);
            var weight = p.Upload(Random(rng, oc * c), wDims);
            var bias = p.Upload(Random(rng, oc), oc);
            var output = p.Poisoned(2, n / 2, oc);
            p.Run((be, x) => be.MatmulForward(x(output), x(input), x(weight), x(bias), layout));
            results.Add(p.Compare($"matmul forward {layout}", output, Reduction));

            var noBias = p.Poisoned(2, n / 2, oc);
            p.Run((be, x) => be.MatmulForward(x(noBias), x(input), x(weight), default, layout));
            results.Add(p.Compare($"matmul forward {layout} no bias", noBias, Reduction));

            var dout = p.Upload(Random(rng, n * oc), 2, n / 2, oc);
            var dinp = p.Upload(Random(rng, n * c), 2, n / 2, c);
            var dweight = p.Upload(Random(rng, oc * c), wDims);
            var dbias = p.Upload(Random(rng, oc), oc);
            p.Run((be, x) => be.MatmulBackward(x(dinp), x(dweight), x(dbias), x(dout), x(input), x(weight), layout));
            results.Add(p.Compare($"matmul backward {layout} dinp", dinp, Reduction));
            results.Add(p.Compare($"matmul backward {layout} dweight", dweight, Reduction));
            results.Add(p.Compare($"matmul backward {layout} dbias", dbias, Reduction));

            p.Run((be, x) => be.MatmulBackward(default, x(dweight), default, x(dout), x(input), x(weight), layout));
            results.Add(p.Compare($"matmul backward {layout} dweight only", dweight, Reduction));
        }

        return results;
    }

    private static List<ConformanceResult> Embedding(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        const int b = 3, t = 41, c = 72, v = 50, maxT = 64, offset = 5;

        // Few distinct ids over many positions, so the backward sums repeated tokens.
        var ids = new int[b * t];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = rng.Next(v);
        }

        var tokens = p.Upload(ids, b * t);
        var table = p.Upload(Random(rng, v * c), v, c);
        var output = p.Poisoned(b, t, c);
        p.Run((be, x) => be.EmbeddingForward(x(output), x(tokens), x(table)));
        results.Add(p.Compare("embedding forward", output, 0));

        var wpe = p.Upload(Random(rng, maxT * c), maxT, c);
        p.Run((be, x) => be.PositionEmbeddingForward(x(output), x(wpe), offset));
        results.Add(p.Compare("position forward (offset 5)", output, Exact));

        var dout = p.Upload(Random(rng, b * t * c), b, t, c);
        var dtable = p.Upload(Random(rng, v * c), v, c);
        p.Run((be, x) => be.EmbeddingBackward(x(dtable), x(dout), x(tokens)));
        results.Add(p.Compare("embedding backward", dtable, Exact));

        var dwpe = p.Upload(Random(rng, maxT * c), maxT, c);
        p.Run((be, x) => be.PositionEmbeddingBackward(x(dwpe), x(dout)));
        results.Add(p.Compare("position backward", dwpe, Exact));

        // Two ids over 2600 positions: each occurs more than the 1024 positions the CUDA kernel gathers at once, so its
        // list is flushed mid-way, and the gathering walks the tokens in several block-wide steps.
        const int many = 2600, narrow = 16;
        var frequent = p.Upload([.. Enumerable.Range(0, many).Select(_ => rng.Next(2))], many);
        var frequentGrad = p.Upload(Random(rng, many * narrow), many, narrow);
        var smallTable = p.Upload(Random(rng, 2 * narrow), 2, narrow);
        p.Run((be, x) => be.EmbeddingBackward(x(smallTable), x(frequentGrad), x(frequent)));
        results.Add(p.Compare("embedding backward, ids repeated past 1024 times", smallTable, Exact));
        return results;
    }

    private static List<ConformanceResult> LayerNorm(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (var (n, c, withBias) in new[] { (67, 96, true), (19, 770, false) })
        {
            var input = p.Upload(Random(rng, n * c, -2f, 3f), n, c);
            var weight = p.Upload(Random(rng, c), c);
            var bias = withBias ? p.Upload(Random(rng, c), c) : Both.None;
            var output = p.Poisoned(n, c);
            var mean = p.Poisoned(n);
            var rstd = p.Poisoned(n);
            p.Run((be, x) => be.LayerNormForward(x(output), x(mean), x(rstd), x(input), x(weight), x(bias), 1e-5f));
            results.Add(p.Compare($"layernorm forward C={c}", output, Reduction));
            results.Add(p.Compare($"layernorm mean C={c}", mean, Reduction));
            results.Add(p.Compare($"layernorm rstd C={c}", rstd, Reduction));

            var dout = p.Upload(Random(rng, n * c), n, c);
            var dinp = p.Upload(Random(rng, n * c), n, c);
            var dweight = p.Upload(Random(rng, c), c);
            var dbias = withBias ? p.Upload(Random(rng, c), c) : Both.None;
            p.Run((be, x) => be.LayerNormBackward(x(dinp), x(dweight), x(dbias), x(dout), x(input), x(weight), x(mean), x(rstd)));
            results.Add(p.Compare($"layernorm backward dinp C={c}", dinp, Reduction));
            results.Add(p.Compare($"layernorm backward dweight C={c}", dweight, Reduction));
            if (withBias)
            {
                results.Add(p.Compare($"layernorm backward dbias C={c}", dbias, Reduction));
            }
        }

        return results;
    }

    private static List<ConformanceResult> RmsNorm(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (var (n, c) in new[] { (67, 96), (19, 770) })
        {
            var input = p.Upload(Random(rng, n * c, -2f, 3f), n, c);
            var weight = p.Upload(Random(rng, c), c);
            var output = p.Poisoned(n, c);
            var rstd = p.Poisoned(n);
            p.Run((be, x) => be.RmsNormForward(x(output), x(rstd), x(input), x(weight), 1e-6f));
            results.Add(p.Compare($"rmsnorm forward C={c}", output, Reduction));
            results.Add(p.Compare($"rmsnorm rstd C={c}", rstd, Reduction));

            var dout = p.Upload(Random(rng, n * c), n, c);
            var dinp = p.Upload(Random(rng, n * c), n, c);
            var dweight = p.Upload(Random(rng, c), c);
            p.Run((be, x) => be.RmsNormBackward(x(dinp), x(dweight), x(dout), x(input), x(weight), x(rstd)));
            results.Add(p.Compare($"rmsnorm backward dinp C={c}", dinp, Reduction));
            results.Add(p.Compare($"rmsnorm backward dweight C={c}", dweight, Reduction));
        }

        return results;
    }

    private static List<ConformanceResult> Gelu(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        const int n = 10_007;
        var input = p.Upload(Random(rng, n, -12f, 12f), n);
        var output = p.Poisoned(n);
        p.Run((be, x) => be.GeluForward(x(output), x(input)));
        var dout = p.Upload(Random(rng, n), n);
        var dinp = p.Upload(Random(rng, n), n);
        p.Run((be, x) => be.GeluBackward(x(dinp), x(dout), x(input)));
        return [p.Compare("gelu forward", output, Exact), p.Compare("gelu backward", dinp, Exact)];
    }

    private static List<ConformanceResult> SwiGlu(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        const int n = 33, f = 130;
        var input = p.Upload(Random(rng, n * 2 * f, -6f, 6f), n, 2 * f);
        var output = p.Poisoned(n, f);
        p.Run((be, x) => be.SwiGluForward(x(output), x(input)));
        var dout = p.Upload(Random(rng, n * f), n, f);
        var dinp = p.Upload(Random(rng, n * 2 * f), n, 2 * f);
        p.Run((be, x) => be.SwiGluBackward(x(dinp), x(dout), x(input)));
        return [p.Compare("swiglu forward", output, Exact), p.Compare("swiglu backward", dinp, Exact)];
    }

    private static List<ConformanceResult> Dropout(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        const int n = 70_001;
        ulong dropSeed = (ulong)rng.NextInt64(), offset = 12_345;
        foreach (float prob in new[] { 0f, 0.1f, 0.5f })
        {
            var input = p.Upload(Random(rng, n), n);
            var output = p.Poisoned(n);
            p.Run((be, x) => be.DropoutForward(x(output), x(input), prob, dropSeed, offset));

            // The mask comes from the shared counter hash, so the kept elements and their values agree bit for bit.
            results.Add(p.CompareBits($"dropout forward p={prob}", output));
            var dinp = p.Upload(Random(rng, n), n);
            p.Run((be, x) => be.DropoutBackward(x(dinp), x(input), prob, dropSeed, offset));
            results.Add(p.CompareBits($"dropout backward p={prob}", dinp));
        }

        return results;
    }

    private static List<ConformanceResult> Rope(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        const int b = 2, t = 19, maxT = 40, offset = 3;
        var shape = new AttentionShape(4, 2, 16);
        var table = new float[maxT * shape.HeadSize];
        RopeTables.Fill(table, maxT, shape.HeadSize, 10_000.0);
        var tab = p.Upload(table, maxT, shape.HeadSize);
        var qkv = p.Upload(Random(rng, b * t * shape.QkvChannels), b, t, shape.QkvChannels);
        p.Run((be, x) => be.RopeForward(x(qkv), x(tab), shape, offset));
        results.Add(p.Compare("rope forward", qkv, Exact));
        p.Run((be, x) => be.RopeBackward(x(qkv), x(tab), shape, offset));
        results.Add(p.Compare("rope backward", qkv, Exact));
        return results;
    }

    private static List<ConformanceResult> Attention(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();

        // Head sizes cover the CUDA classes (≤64, ≤128, ≤256), sizes that are not multiples of 32, MHA and GQA, and
        // sequence lengths that are not multiples of the 16/32-row tiles.
        foreach (var (b, t, shape) in new[]
                 {
                     (2, 37, new AttentionShape(4, 2, 16)),
                     (1, 70, new AttentionShape(2, 1, 64)),
                     (1, 33, new AttentionShape(3, 3, 96)),
                     (2, 20, new AttentionShape(2, 1, 200)),
                     (1, 1, new AttentionShape(2, 2, 8)),
                 })
        {
            string tag = $"B={b} T={t} NH={shape.NumHeads} NKV={shape.NumKvHeads} HS={shape.HeadSize}";
            var qkv = p.Upload(Random(rng, b * t * shape.QkvChannels, -2f, 2f), b, t, shape.QkvChannels);
            var output = p.Poisoned(b, t, shape.OutChannels);
            var lse = p.Poisoned(b, shape.NumHeads, t);
            p.Run((be, x) => be.AttentionForward(x(output), x(lse), x(qkv), shape));
            results.Add(p.Compare($"attention forward {tag}", output, Long));
            results.Add(p.Compare($"attention lse {tag}", lse, Long));

            var dout = p.Upload(Random(rng, b * t * shape.OutChannels), b, t, shape.OutChannels);
            var dqkv = p.Upload(Random(rng, b * t * shape.QkvChannels), b, t, shape.QkvChannels);
            p.Run((be, x) => be.AttentionBackward(x(dqkv), x(dout), x(qkv), x(output), x(lse), shape));
            results.Add(p.Compare($"attention backward {tag}", dqkv, Long));
        }

        return results;
    }

    // Packed rows: documents of lengths that start mid-tile, span several 16/32/64-row tiles, or are a single token, and
    // padding tokens that are one-token documents; MHA and GQA, head sizes in two CUDA classes.
    private static List<ConformanceResult> AttentionPacked(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (var (lengths, shape) in new[]
                 {
                     (new[] { new[] { 5, 40, 1, 20 }, new[] { 66 } }, new AttentionShape(4, 2, 16)),
                     (new[] { new[] { 33, 1, 1, 35, 3 } }, new AttentionShape(2, 1, 64)),
                     (new[] { new[] { 17, 50, 2 }, new[] { 1, 1, 1, 1, 65 } }, new AttentionShape(3, 3, 96)),
                 })
        {
            int b = lengths.Length, t = lengths[0].Sum();
            var positions = new int[b * t];
            for (int row = 0; row < b; row++)
            {
                int at = row * t;
                foreach (int length in lengths[row])
                {
                    for (int i = 0; i < length; i++)
                    {
                        positions[at++] = i;
                    }
                }
            }

            string tag = $"B={b} T={t} documents {string.Join("|", lengths.Select(l => string.Join(",", l)))} NH={shape.NumHeads} NKV={shape.NumKvHeads} HS={shape.HeadSize}";
            var ids = p.Upload(positions, b, t);
            var qkv = p.Upload(Random(rng, b * t * shape.QkvChannels, -2f, 2f), b, t, shape.QkvChannels);
            var output = p.Poisoned(b, t, shape.OutChannels);
            var lse = p.Poisoned(b, shape.NumHeads, t);
            p.Run((be, x) => be.AttentionForward(x(output), x(lse), x(qkv), shape, x(ids)));
            results.Add(p.Compare($"packed attention forward {tag}", output, Long));
            results.Add(p.Compare($"packed attention lse {tag}", lse, Long));

            var dout = p.Upload(Random(rng, b * t * shape.OutChannels), b, t, shape.OutChannels);
            var dqkv = p.Upload(Random(rng, b * t * shape.QkvChannels), b, t, shape.QkvChannels);
            p.Run((be, x) => be.AttentionBackward(x(dqkv), x(dout), x(qkv), x(output), x(lse), shape, x(ids)));
            results.Add(p.Compare($"packed attention backward {tag}", dqkv, Long));
        }

        return results;
    }

    private static List<ConformanceResult> AttentionDecode(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();

        // A prefill chunk then single-token steps, per-sequence lengths differing, MHA and GQA, head sizes up to 96.
        foreach (var (b, maxT, shape) in new[]
                 {
                     (3, 40, new AttentionShape(4, 2, 16)),
                     (1, 70, new AttentionShape(2, 1, 64)),
                     (2, 33, new AttentionShape(3, 3, 96)),
                 })
        {
            string tag = $"B={b} maxT={maxT} NH={shape.NumHeads} NKV={shape.NumKvHeads} HS={shape.HeadSize}";
            var keys = p.Upload(Random(rng, b * shape.NumKvHeads * maxT * shape.HeadSize), b, shape.NumKvHeads, maxT, shape.HeadSize);
            var values = p.Upload(Random(rng, b * shape.NumKvHeads * maxT * shape.HeadSize), b, shape.NumKvHeads, maxT, shape.HeadSize);
            int[] lengths = [.. Enumerable.Range(0, b).Select(i => 3 * i)];
            foreach (int tq in new[] { 7, 1, 1 })
            {
                var positions = p.Upload([.. lengths], b);
                var qkv = p.Upload(Random(rng, b * tq * shape.QkvChannels, -2f, 2f), b, tq, shape.QkvChannels);
                var output = p.Poisoned(b, tq, shape.OutChannels);
                p.Run((be, x) => be.AttentionDecode(x(output), x(qkv), x(keys), x(values), x(positions), shape));
                results.Add(p.Compare($"attention decode {tag} Tq={tq}", output, Long));
                results.Add(p.Compare($"attention decode k cache {tag} Tq={tq}", keys, Exact));
                results.Add(p.Compare($"attention decode v cache {tag} Tq={tq}", values, Exact));
                var fresh = p.Upload(Random(rng, b * tq * shape.QkvChannels, -2f, 2f), b, tq, shape.QkvChannels);
                var ahead = p.Upload([.. lengths.Select(x => x + tq)], b);
                if (lengths.Max() + (2 * tq) <= maxT)
                {
                    p.Run((be, x) => be.KvCacheWrite(x(keys), x(values), x(fresh), x(ahead), shape));
                    results.Add(p.Compare($"kv cache write {tag} Tq={tq}", keys, Exact));
                    results.Add(p.Compare($"kv cache write v {tag} Tq={tq}", values, Exact));
                }

                for (int i = 0; i < b; i++)
                {
                    lengths[i] += tq;
                }
            }
        }

        return results;
    }

    private static List<ConformanceResult> CrossEntropy(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (var (n, v) in new[] { (45, 1000), (7, 9000) })
        {
            var ids = new int[n];
            for (int i = 0; i < n; i++)
            {
                ids[i] = i % 9 == 4 ? -100 : rng.Next(v);
            }

            var targets = p.Upload(ids, n);
            var logits = p.Upload(Random(rng, n * v, -8f, 8f), n, v);
            var losses = p.Poisoned(n);
            p.Run((be, x) => be.CrossEntropyForward(x(losses), x(logits), x(targets)));
            results.Add(p.Compare($"cross-entropy forward V={v}", losses, Reduction));

            var lossesFused = p.Poisoned(n);
            p.Run((be, x) => be.CrossEntropyForwardBackward(x(lossesFused), x(logits), x(targets), 1f / n));
            results.Add(p.Compare($"cross-entropy fused losses V={v}", lossesFused, Reduction));
            results.Add(p.Compare($"cross-entropy fused dlogits V={v}", logits, Reduction));
        }

        return results;
    }

    private static List<ConformanceResult> AdamW(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        const int n = 50_021;
        var parameters = p.Upload(Random(rng, n), n);
        var grads = p.Upload(Random(rng, n, -0.1f, 0.1f), n);
        var m = p.Upload(Random(rng, n, -0.01f, 0.01f), n);
        var v = p.Upload(Random(rng, n, 0f, 0.001f), n);
        var hyper = new AdamWParameters(1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, 0.5f);
        p.Run((be, x) => be.AdamW(x(parameters), x(grads), x(m), x(v), hyper));
        return [p.Compare("adamw params", parameters, Exact), p.Compare("adamw m", m, Exact), p.Compare("adamw v", v, Exact)];
    }

    private static List<ConformanceResult> SquaredNorm(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (int n in new[] { 1, 12_345, (1 << 20) + 7 })
        {
            var x = p.Upload(Random(rng, n), n);
            double r = p.Reference.SquaredNorm(x.Reference), c = p.Candidate.SquaredNorm(x.Candidate);
            results.Add(BackendPair.CompareScalar($"squared norm n={n}", r, c, 1e-12));
        }

        return results;
    }
}
