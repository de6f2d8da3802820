using Engine.Core.Backends;
using Engine.Core.Numerics;
using Engine.Core.Tensors;
using Engine.Models.Parameters;

namespace Engine.Models.Lora;

/// <summary>
/// The low-rank adapters of one model: A [r, in] and B [out, r] for every targeted site, in one trainable
/// <see cref="ParameterSet"/> (values, gradients, AdamW moments of the adapters only; the base weights have none).
/// Parameters are named as PEFT names them inside the model (<c>model.layers.0.self_attn.q_proj.lora_A.weight</c>).
/// <para>Per site, with x its input [N,in] and y its output block [N,out]: forward y += s·(drop(x)·Aᵀ)·Bᵀ; backward
/// dB += s·dyᵀ·u, du = s·dy·B, dA += duᵀ·drop(x), dx += drop'(du·A), with u = drop(x)·Aᵀ [N,r] kept from the forward and
/// the dropout mask recomputed from its seed. Every step is a GEMM or a column copy of the kernel contract.</para>
/// </summary>
public sealed class LoraAdapters : IDisposable
{
    private readonly Dictionary<(int Layer, LinearKind Linear), LoraSite[]> byLinear;
    private readonly Dictionary<LoraSite, int> index = [];
    private LoraActivations? activations;
    private float activeDropout;
    private ulong activeSeed;

    /// <summary>
    /// Allocates adapters for <paramref name="sites"/> on <paramref name="backend"/>, all zero (see <see cref="Initialize"/>),
    /// plus a copy of the scalar head of <paramref name="scoreChannels"/> inputs when the config saves it (modules_to_save).
    /// </summary>
    public LoraAdapters(Backend backend, LoraConfig config, IReadOnlyList<LoraSite> sites, int scoreChannels = 0)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(sites);
        if (config.SavesScoreHead && scoreChannels < 1)
        {
            throw new ArgumentException("modules_to_save lists the scalar head (score): the model must have one", nameof(scoreChannels));
        }

        Backend = backend;
        Config = config;
        Sites = sites;
        Parameters = new ParameterSet(backend, ParameterSpecs(config, sites, scoreChannels), trainable: true);
        byLinear = sites.GroupBy(s => (s.Layer, s.Linear)).ToDictionary(g => g.Key, g => g.ToArray());
        for (int i = 0; i < sites.Count; i++)
        {
            index[sites[i]] = i;
        }
    }

    /// <summary>The backend the adapters live on.</summary>
    public Backend Backend { get; }

    /// <summary>r, α, dropout, targets.</summary>
    public LoraConfig Config { get; }

    /// <summary>The adapted linear layers, in model order.</summary>
    public IReadOnlyList<LoraSite> Sites { get; }

    /// <summary>A and B of every site, with their gradients and AdamW moments.</summary>
    public ParameterSet Parameters { get; }

    /// <summary>
    /// When false, every pass runs the base model alone (the reference model of DPO, PPO and GRPO); the adapters keep
    /// their values. See <see cref="Transformer.AdaptersDisabled"/>.
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The base model's name or path, written as <c>base_model_name_or_path</c> when the adapter is saved.</summary>
    public string? BaseModel { get; set; }

    /// <summary>Bytes of the per-(B, T) buffers the adapters keep for backward, 0 before the first pass.</summary>
    public long ActivationBytes => activations?.ByteLength ?? 0;

    /// <summary>Number of adapter parameters of <paramref name="sites"/> at rank r: Σ r·(in + out).</summary>
    public static long ParameterCount(LoraConfig config, IEnumerable<LoraSite> sites) =>
        ParameterSpecs(config, sites).Sum(p => p.Shape.ElementCount);

    /// <summary>Bytes of the training buffers for N = B·T rows (u [N,r] per site, plus the shared scratch).</summary>
    public static long ActivationBytesFor(LoraConfig config, IReadOnlyList<LoraSite> sites, long rows) =>
        LoraActivations.ElementCount(config, sites, rows) * sizeof(float);

    /// <summary>
    /// The (name, shape, kind) of every adapter tensor: A [r, in] then B [out, r] per site, then the scalar head
    /// (<c>score.weight</c> [1, C], <c>score.bias</c> [1]) when the config saves it and <paramref name="scoreChannels"/> is C.
    /// </summary>
    public static IEnumerable<(string Name, Shape Shape, ParameterKind Kind)> ParameterSpecs(LoraConfig config, IEnumerable<LoraSite> sites, int scoreChannels = 0)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(sites);
        foreach (var s in sites)
        {
            yield return (s.AName, new Shape(config.Rank, s.InFeatures), ParameterKind.Matrix);
            yield return (s.BName, new Shape(s.OutFeatures, config.Rank), ParameterKind.Matrix);
        }

        if (config.SavesScoreHead && scoreChannels > 0)
        {
            yield return (Names.ScoreWeight, new Shape(1, scoreChannels), ParameterKind.Matrix);
            yield return (Names.ScoreBias, new Shape(1), ParameterKind.Bias);
        }
    }

    /// <summary>Whether the adapters hold the scalar head (trained in full, saved with them) and are enabled.</summary>
    public bool ServesScoreHead => Enabled && Parameters.Contains(Names.ScoreWeight);

    /// <summary>
    /// PEFT's default initialisation: A Kaiming-uniform with a = √5, i.e. U(−1/√in, 1/√in) (torch's
    /// <c>kaiming_uniform_(a=math.sqrt(5))</c>), and B = 0, so the adapted model starts equal to the base.
    /// </summary>
    public void Initialize(ulong seed)
    {
        var rng = new RandomStream(seed);
        foreach (var s in Sites)
        {
            var a = new float[Config.Rank * s.InFeatures];
            double bound = 1.0 / Math.Sqrt(s.InFeatures);
            for (int i = 0; i < a.Length; i++)
            {
                a[i] = (float)(((2 * rng.NextDouble()) - 1) * bound);
            }

            Backend.CopyFromHost<float>(Parameters.Value(s.AName), a);
            Backend.Zero(Parameters.Value(s.BName));
        }
    }

    /// <summary>The values (or, with <paramref name="gradient"/>, the gradient) of one adapter tensor by its PEFT name.</summary>
    public float[] Read(string name, bool gradient = false)
    {
        var info = Parameters.Info(name);
        var host = new float[info.ElementCount];
        Backend.CopyToHost<float>(gradient ? Parameters.Gradient(name) : Parameters.Value(name), host);
        return host;
    }

    /// <summary>Overwrites one adapter tensor (by its PEFT name) with <paramref name="values"/>.</summary>
    public void Write(string name, ReadOnlySpan<float> values) => Backend.CopyFromHost(Parameters.Value(name), values);

    /// <summary>Whether any site is on this linear layer.</summary>
    public bool Adapts(int layer, LinearKind linear) => Enabled && byLinear.ContainsKey((layer, linear));

    /// <summary>
    /// Adds every adapter of (layer, linear) to <paramref name="output"/> [N, fused out] given the layer's
    /// <paramref name="input"/> [N, in]. A training pass draws the dropout masks from <paramref name="dropoutSeed"/>
    /// and keeps u for <see cref="Backward"/>.
    /// </summary>
    public void Forward(int layer, LinearKind linear, Tensor input, Tensor output, bool training, ulong dropoutSeed)
    {
        if (!TryBegin(layer, linear, input, out var sites, out var act))
        {
            return;
        }

        var x2 = Rows(input, act);
        var y2 = Rows(output, act);
        activeDropout = training ? (float)Config.Dropout : 0f;
        activeSeed = dropoutSeed;
        float s = (float)Config.Scale;
        var b = Backend;
        foreach (var site in sites)
        {
            var u = act.U[index[site]];
            var xd = DroppedInput(act, site, x2);
            b.Gemm(u, xd, Parameters.Value(site.AName), transposeA: false, transposeB: true);
            if (site.OutFeatures == y2.Shape[1])
            {
                b.Gemm(y2, u, Parameters.Value(site.BName), transposeA: false, transposeB: true, alpha: s, beta: 1f);
            }
            else
            {
                var delta = act.Wide(site.OutFeatures);
                b.Gemm(delta, u, Parameters.Value(site.BName), transposeA: false, transposeB: true, alpha: s);
                b.CopyColumns(y2, site.Column, delta, 0, site.OutFeatures, accumulate: true);
            }
        }
    }

    /// <summary>
    /// Backward of the adapters of (layer, linear) after the matching <see cref="Forward"/> of a training pass: adds
    /// into the gradients of A and B and into <paramref name="inputGrad"/> [N, in], from <paramref name="outputGrad"/>.
    /// </summary>
    public void Backward(int layer, LinearKind linear, Tensor inputGrad, Tensor outputGrad, Tensor input)
    {
        if (!TryBegin(layer, linear, input, out var sites, out var act))
        {
            return;
        }

        var x2 = Rows(input, act);
        var dx2 = Rows(inputGrad, act);
        var dy2 = Rows(outputGrad, act);
        float s = (float)Config.Scale;
        var b = Backend;
        foreach (var site in sites)
        {
            var u = act.U[index[site]];
            var dy = dy2;
            if (site.OutFeatures != dy2.Shape[1])
            {
                dy = act.Wide(site.OutFeatures);
                b.CopyColumns(dy, 0, dy2, site.Column, site.OutFeatures, accumulate: false);
            }

            var weightA = Parameters.Value(site.AName);
            b.Gemm(Parameters.Gradient(site.BName), dy, u, transposeA: true, transposeB: false, alpha: s, beta: 1f);
            b.Gemm(act.DU, dy, Parameters.Value(site.BName), transposeA: false, transposeB: false, alpha: s);
            var xd = DroppedInput(act, site, x2);
            b.Gemm(Parameters.Gradient(site.AName), act.DU, xd, transposeA: true, transposeB: false, beta: 1f);
            if (activeDropout == 0f)
            {
                b.Gemm(dx2, act.DU, weightA, transposeA: false, transposeB: false, beta: 1f);
            }
            else
            {
                var dxd = act.Input(site.InFeatures);
                b.Gemm(dxd, act.DU, weightA, transposeA: false, transposeB: false);
                b.DropoutBackward(dx2, dxd, activeDropout, activeSeed, DropoutOffset(site, act.Rows));
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        activations?.Dispose();
        Parameters.Dispose();
    }

    // The sites on (layer, linear) and the buffers for the input's N rows; false when the adapters are off or none is there.
    private bool TryBegin(int layer, LinearKind linear, Tensor input, out LoraSite[] sites, out LoraActivations act)
    {
        if (!Enabled || !byLinear.TryGetValue((layer, linear), out sites!))
        {
            sites = [];
            act = null!;
            return false;
        }

        act = Activations(input.ElementCount / input.Shape.Last);
        return true;
    }

    // A [B,T,·] activation as the [N,·] matrix the GEMMs take.
    private static Tensor Rows(Tensor t, LoraActivations act) => t.Reshape(act.Rows, t.Shape.Last);

    // drop(x) for a site: x itself without dropout, else the masked copy in the scratch (the mask is a pure function of
    // the seed and the site, so backward recomputes it).
    private Tensor DroppedInput(LoraActivations act, LoraSite site, Tensor x)
    {
        if (activeDropout == 0f)
        {
            return x;
        }

        var xd = act.Input(site.InFeatures);
        Backend.DropoutForward(xd, x, activeDropout, activeSeed, DropoutOffset(site, x.Shape[0]));
        return xd;
    }

    private ulong DropoutOffset(LoraSite site, long rows) => (ulong)index[site] * (ulong)(rows * LoraActivations.MaxInput(Sites));

    private LoraActivations Activations(long rows)
    {
        if (activations is null || activations.Rows != rows)
        {
            activations?.Dispose();
            activations = new LoraActivations(Backend, Config, Sites, rows);
        }

        return activations;
    }
}
