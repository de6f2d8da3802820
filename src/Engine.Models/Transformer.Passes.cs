using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Models.Lora;

namespace Engine.Models;

public sealed partial class Transformer
{
    /// <summary>
    /// Runs the trunk on token ids [B,T] (row-major) and returns the hidden states after the final norm, [N,C] on the
    /// device (valid until the next pass). <paramref name="positionIds"/> [B,T] are the per-document positions of packed
    /// rows (see <see cref="ForwardBackward"/>); empty for plain rows.
    /// </summary>
    public Tensor Forward(ReadOnlySpan<int> tokens, int batch, int time, ReadOnlySpan<int> positionIds = default)
    {
        var p = Plan(batch, time, training: false);
        Upload(p, tokens);
        UploadPositions(p, positionIds);
        ForwardTrunk(p, training: false);
        return p.Final;
    }

    /// <summary>Runs the model and writes the logits [B,T,V] to <paramref name="logits"/>, computing them one row chunk at a time.</summary>
    public void ForwardLogits(ReadOnlySpan<int> tokens, int batch, int time, Span<float> logits)
    {
        long expected = (long)batch * time * Config.VocabSize;
        if (logits.Length != expected)
        {
            throw new ArgumentException($"logits span has {logits.Length} elements, expected B·T·V = {expected}", nameof(logits));
        }

        var p = Plan(batch, time, training: false);
        Upload(p, tokens);
        UploadPositions(p, default);
        ForwardTrunk(p, training: false);
        int n = batch * time, chunk = (int)p.Logits.Shape[0], v = Config.VocabSize;
        for (int start = 0; start < n; start += chunk)
        {
            int rows = Math.Min(chunk, n - start);
            var chunkLogits = p.Logits.Rows(0, rows);
            long t0 = Profiler.Begin();
            Backend.MatmulForward(chunkLogits, p.Final.Rows(start, rows), HeadWeight, default, WeightLayout.OutIn);
            Profiler.End(t0, OpKind.Matmul, backward: false);
            Backend.CopyToHost(chunkLogits, logits.Slice(start * v, rows * v));
        }
    }

    /// <summary>
    /// One forward and backward pass of the next-token loss: targets [B,T] hold the token to predict at each position
    /// (negative = ignored). Gradients are <b>added</b> to the parameter gradients, scaled by
    /// <paramref name="lossScale"/> (e.g. 1/micro-batches for accumulation). Returns the mean loss over the counted positions.
    /// <para>
    /// Padding-free packing: <paramref name="positionIds"/> [B,T] give each token's position within its document (0 at
    /// every document start, then counting up). Positions restart per document (learned positions, RoPE) and attention
    /// never crosses a document boundary, so a packed row trains as its documents would one by one, provided the targets
    /// do not cross either (the last token of a document has none). Empty: every row is one document.
    /// </para>
    /// </summary>
    public double ForwardBackward(
        ReadOnlySpan<int> tokens, ReadOnlySpan<int> targets, int batch, int time, float lossScale = 1f, ReadOnlySpan<int> positionIds = default)
    {
        var p = Plan(batch, time, training: true);
        Upload(p, tokens);
        UploadPositions(p, positionIds);
        int counted = UploadTargets(p, targets);
        ForwardTrunk(p, training: true);
        var b = Backend;
        b.Zero(p.DNorm);

        // The LM head and the loss run over row chunks: logits of a chunk are computed, turned into their gradient in
        // place by the fused cross-entropy, and consumed by the head's backward before the next chunk overwrites them.
        int n = batch * time, chunk = (int)p.Logits.Shape[0];
        float gradScale = counted > 0 ? lossScale / counted : 0f;
        for (int start = 0; start < n; start += chunk)
        {
            int rows = Math.Min(chunk, n - start);
            var logits = p.Logits.Rows(0, rows);
            var hidden = p.Final.Rows(start, rows);
            long t0 = Profiler.Begin();
            b.MatmulForward(logits, hidden, HeadWeight, default, WeightLayout.OutIn);
            Profiler.End(t0, OpKind.Matmul, backward: false);
            t0 = Profiler.Begin();
            b.CrossEntropyForwardBackward(p.Losses.Slice(start, rows), logits, p.Targets.Slice(start, rows), gradScale);
            Profiler.End(t0, OpKind.Loss, backward: false);
            t0 = Profiler.Begin();
            b.MatmulBackward(p.DNorm.Rows(start, rows), HeadGradient, default, logits, hidden, HeadWeight, WeightLayout.OutIn);
            Profiler.End(t0, OpKind.Matmul, backward: true);
        }

        BackwardTrunk(p);
        b.CopyToHost<float>(p.Losses, p.HostLosses);
        double sum = 0;
        foreach (float x in p.HostLosses)
        {
            sum += x;
        }

        return counted > 0 ? sum / counted : 0.0;
    }

    /// <summary>
    /// Forward pass for training with a loss of the caller's own (DPO, reward and value heads, PPO): returns the hidden
    /// states after the final norm [N,C], keeps every activation for <see cref="BackwardFromHidden"/>, and zeroes
    /// <see cref="HiddenGradient"/>. <paramref name="positionIds"/>: packed rows, as for <see cref="ForwardBackward"/>.
    /// </summary>
    public Tensor ForwardTraining(ReadOnlySpan<int> tokens, int batch, int time, ReadOnlySpan<int> positionIds = default)
    {
        var p = Plan(batch, time, training: true);
        Upload(p, tokens);
        UploadPositions(p, positionIds);
        ForwardTrunk(p, training: true);
        Backend.Zero(p.DNorm);
        return p.Final;
    }

    /// <summary>∂L/∂hidden [N,C] for the last <see cref="ForwardTraining"/>: callers add their heads' gradients here.</summary>
    public Tensor HiddenGradient => plan is { Training: true } p
        ? p.DNorm
        : throw new InvalidOperationException("call ForwardTraining before using the hidden-state gradient");

    /// <summary>
    /// Backward from <see cref="HiddenGradient"/> through the final norm, every layer and the embeddings; adds into the
    /// parameter gradients. Pairs with the preceding <see cref="ForwardTraining"/>.
    /// </summary>
    public void BackwardFromHidden()
    {
        if (plan is not { Training: true } p)
        {
            throw new InvalidOperationException("call ForwardTraining before BackwardFromHidden");
        }

        BackwardTrunk(p);
    }

    // dNorm holds ∂L/∂(final hidden states) on entry.
    private void BackwardTrunk(ActivationPlan p)
    {
        var b = Backend;
        b.Zero(p.DResidual);
        long tn = Profiler.Begin();
        var last = p.Residual[Config.Layers];
        if (IsLlama)
        {
            b.RmsNormBackward(p.DResidual, BaseGradient(Names.FinalNormWeight), p.DNorm, last, Parameters.Value(Names.FinalNormWeight), p.FinalRstd);
        }
        else
        {
            b.LayerNormBackward(
                p.DResidual, BaseGradient(Names.FinalNormWeight), BaseGradient(Names.FinalNormBias), p.DNorm, last,
                Parameters.Value(Names.FinalNormWeight), p.FinalMean, p.FinalRstd);
        }

        Profiler.End(tn, OpKind.Norm, backward: true);
        for (int l = Config.Layers - 1; l >= 0; l--)
        {
            RecomputeLayer(p, l);
            BackwardLayer(p, l);
        }

        if (!Parameters.Trainable)
        {
            return;
        }

        long te = Profiler.Begin();
        var dEmbedding = DropoutGradient(p, p.DResidual, 0);
        b.EmbeddingBackward(Parameters.Gradient(Names.Embedding), dEmbedding, p.Tokens);
        PositionsBackward(dEmbedding);

        Profiler.End(te, OpKind.Embedding, backward: true);
    }

    /// <summary>Sets every parameter gradient to zero.</summary>
    public void ZeroGradients() => Backend.Zero(TrainableParameters.Gradients);

    /// <summary>
    /// Clips the global gradient norm to <see cref="AdamWSettings.MaxGradNorm"/> (as torch's clip_grad_norm_) and applies one
    /// AdamW update with step number <paramref name="step"/> (1-based). Returns the norm before clipping. When the norm is
    /// not finite the parameters are left untouched and the norm is returned so the caller can stop or skip.
    /// </summary>
    public double OptimizerStep(float learningRate, int step, AdamWSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        long t0 = Profiler.Begin();
        var trained = TrainableParameters;
        double norm = Math.Sqrt(Backend.SquaredNorm(trained.Gradients));
        if (!double.IsFinite(norm))
        {
            Profiler.End(t0, OpKind.Optimizer, backward: true);
            return norm;
        }

        float clip = settings.MaxGradNorm > 0 && norm > settings.MaxGradNorm ? (float)(settings.MaxGradNorm / (norm + 1e-6)) : 1f;
        var hyper = new AdamWParameters(learningRate, settings.Beta1, settings.Beta2, settings.Epsilon, settings.WeightDecay, step, clip);
        long matrices = trained.MatrixElementCount, total = trained.ElementCount;
        if (matrices > 0)
        {
            Backend.AdamW(
                trained.Values.Slice(0, matrices), trained.Gradients.Slice(0, matrices),
                trained.FirstMoment.Slice(0, matrices), trained.SecondMoment.Slice(0, matrices), hyper);
        }

        if (total > matrices)
        {
            long rest = total - matrices;
            var restHyper = hyper with { WeightDecay = settings.DecayAllParameters ? settings.WeightDecay : 0f };
            Backend.AdamW(
                trained.Values.Slice(matrices, rest), trained.Gradients.Slice(matrices, rest),
                trained.FirstMoment.Slice(matrices, rest), trained.SecondMoment.Slice(matrices, rest), restHyper);
        }

        Profiler.End(t0, OpKind.Optimizer, backward: true);
        return norm;
    }

    private void Upload(ActivationPlan p, ReadOnlySpan<int> tokens)
    {
        int n = p.Batch * p.Time, v = Config.VocabSize;
        if (tokens.Length != n)
        {
            throw new ArgumentException($"expected B·T = {n} token ids, got {tokens.Length}", nameof(tokens));
        }

        for (int i = 0; i < n; i++)
        {
            if ((uint)tokens[i] >= (uint)v)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {tokens[i]} at position {i} is outside the vocabulary [0, {v})");
            }
        }

        Backend.CopyFromHost(p.Tokens, tokens);
    }

    // Checks and uploads next-token targets; returns how many count (non-negative).
    private int UploadTargets(ActivationPlan p, ReadOnlySpan<int> targets)
    {
        int n = p.Batch * p.Time, v = Config.VocabSize;
        if (targets.Length != n)
        {
            throw new ArgumentException($"expected B·T = {n} targets, got {targets.Length}", nameof(targets));
        }

        int counted = 0;
        for (int i = 0; i < n; i++)
        {
            if (targets[i] >= v)
            {
                throw new ArgumentOutOfRangeException(nameof(targets), $"target {targets[i]} at position {i} is outside the vocabulary [0, {v})");
            }

            counted += targets[i] >= 0 ? 1 : 0;
        }

        Backend.CopyFromHost(p.Targets, targets);
        return counted;
    }

    // Residual dropout is active only in training passes; backward reuses the probability and seed recorded here.
    // With a cache, the new tokens sit at per-sequence positions (cache.PositionIds) and attention runs against the cache.
    private void ForwardTrunk(ActivationPlan p, bool training, KvCache? cache = null)
    {
        var b = Backend;
        using var pendingPass = KeepPendingTrainingState(training);
        activeDropout = training ? residualDropout : 0f;
        activeDropoutSeed = DropoutSeed;
        loraTraining = training;
        long t0 = Profiler.Begin();
        var x0 = p.Residual[0];
        int n = p.Batch * p.Time;
        b.EmbeddingForward(x0.Reshape(n, Config.Channels), p.Tokens.Reshape(n), Parameters.Value(Names.Embedding));
        if (cache is not null)
        {
            var ids = cache.PositionIds.Slice(0, n);
            if (IsLlama)
            {
                // RoPE rows of each (b, t) gathered once; every layer rotates with them as one sequence of N rows.
                b.EmbeddingForward(cache.RopeRows.Slice(0, n, Config.HeadChannels), ids, ropeTable);
            }
            else
            {
                var positions = cache.PositionRows.Slice(0, n, Config.Channels);
                b.EmbeddingForward(positions, ids, Parameters.Value(Names.PositionEmbedding));
                b.Add(x0.Reshape(n, Config.Channels), x0.Reshape(n, Config.Channels), positions);
            }
        }
        else
        {
            PositionsForward(p, x0);
        }

        DropBranch(p, x0, 0);
        Profiler.End(t0, OpKind.Embedding, backward: false);
        for (int l = 0; l < Config.Layers; l++)
        {
            ForwardLayer(p, l, cache);
        }

        t0 = Profiler.Begin();
        var last = p.Residual[Config.Layers];
        if (IsLlama)
        {
            b.RmsNormForward(p.Final, p.FinalRstd, last, Parameters.Value(Names.FinalNormWeight), Config.NormEpsilon);
        }
        else
        {
            b.LayerNormForward(
                p.Final, p.FinalMean, p.FinalRstd, last, Parameters.Value(Names.FinalNormWeight), Parameters.Value(Names.FinalNormBias), Config.NormEpsilon);
        }

        Profiler.End(t0, OpKind.Norm, backward: false);
    }

    private void ForwardLayer(ActivationPlan p, int l, KvCache? cache)
    {
        var b = Backend;
        var w = weights[l];
        var a = p.Layers[l];
        var x = p.Residual[l];

        long t = Profiler.Begin();
        Normalize(a.Norm1, a.Mean1, a.Rstd1, x, w.Norm1Weight, w.Norm1Bias);
        Profiler.End(t, OpKind.Norm, backward: false);
        t = Profiler.Begin();
        b.MatmulForward(a.Qkv, a.Norm1, w.QkvWeight, w.QkvBias, WeightLayout.OutIn);
        LoraForward(l, LinearKind.Qkv, a.Norm1, a.Qkv);
        Profiler.End(t, OpKind.Matmul, backward: false);
        int n = p.Batch * p.Time;
        if (IsLlama)
        {
            t = Profiler.Begin();
            if (cache is null)
            {
                Rotate(a.Qkv, inverse: false);
            }
            else
            {
                b.RopeForward(a.Qkv.Reshape(1, n, Attention.QkvChannels), cache.RopeRows.Slice(0, n, Config.HeadChannels), Attention);
            }

            Profiler.End(t, OpKind.Rope, backward: false);
        }

        t = Profiler.Begin();
        if (cache is null)
        {
            b.AttentionForward(a.Attention, a.LogSumExp, a.Qkv, Attention, activePositions);
        }
        else if (cache.FreshChunk)
        {
            // Every sequence starts at position 0: the tiled causal kernel gives the same result; then store k and v.
            b.AttentionForward(a.Attention, a.LogSumExp, a.Qkv, Attention);
            b.KvCacheWrite(cache.Keys[l], cache.Values[l], a.Qkv, cache.Positions, Attention);
        }
        else
        {
            b.AttentionDecode(a.Attention, a.Qkv, cache.Keys[l], cache.Values[l], cache.Positions, Attention);
        }

        Profiler.End(t, OpKind.Attention, backward: false);
        t = Profiler.Begin();
        b.MatmulForward(p.Branch, a.Attention, w.OutWeight, w.OutBias, WeightLayout.OutIn);
        LoraForward(l, LinearKind.Out, a.Attention, p.Branch);
        Profiler.End(t, OpKind.Matmul, backward: false);
        t = Profiler.Begin();
        DropBranch(p, p.Branch, 1 + (2 * l));
        b.Add(a.Mid, x, p.Branch);
        Profiler.End(t, OpKind.Residual, backward: false);

        t = Profiler.Begin();
        Normalize(a.Norm2, a.Mean2, a.Rstd2, a.Mid, w.Norm2Weight, w.Norm2Bias);
        Profiler.End(t, OpKind.Norm, backward: false);
        t = Profiler.Begin();
        b.MatmulForward(a.Up, a.Norm2, w.UpWeight, w.UpBias, WeightLayout.OutIn);
        LoraForward(l, LinearKind.Up, a.Norm2, a.Up);
        Profiler.End(t, OpKind.Matmul, backward: false);
        t = Profiler.Begin();
        if (IsLlama)
        {
            b.SwiGluForward(a.Activated, a.Up);
        }
        else
        {
            b.GeluForward(a.Activated, a.Up);
        }

        Profiler.End(t, OpKind.Activation, backward: false);
        t = Profiler.Begin();
        b.MatmulForward(p.Branch, a.Activated, w.DownWeight, w.DownBias, WeightLayout.OutIn);
        LoraForward(l, LinearKind.Down, a.Activated, p.Branch);
        Profiler.End(t, OpKind.Matmul, backward: false);
        t = Profiler.Begin();
        DropBranch(p, p.Branch, 2 + (2 * l));
        b.Add(p.Residual[l + 1], a.Mid, p.Branch);
        Profiler.End(t, OpKind.Residual, backward: false);
    }

    // dResidual holds ∂L/∂(output of layer l) on entry and ∂L/∂(input of layer l) on exit: each branch's input-norm
    // backward adds its contribution onto the pass-through gradient of the residual connection.
    private void BackwardLayer(ActivationPlan p, int l)
    {
        var b = Backend;
        var w = weights[l];
        var g = gradients[l];
        var a = p.Layers[l];
        var dres = p.DResidual;

        long t = Profiler.Begin();
        b.Zero(p.DAct);
        b.Zero(p.DUp);
        b.Zero(p.DNorm);
        b.Zero(p.DAtt);
        b.Zero(p.DQkv);
        Profiler.End(t, OpKind.Residual, backward: true);

        t = Profiler.Begin();
        var dDown = DropoutGradient(p, dres, 2 + (2 * l));
        b.MatmulBackward(p.DAct, g.DownWeight, g.DownBias, dDown, a.Activated, w.DownWeight, WeightLayout.OutIn);
        LoraBackward(l, LinearKind.Down, p.DAct, dDown, a.Activated);
        Profiler.End(t, OpKind.Matmul, backward: true);
        t = Profiler.Begin();
        if (IsLlama)
        {
            b.SwiGluBackward(p.DUp, p.DAct, a.Up);
        }
        else
        {
            b.GeluBackward(p.DUp, p.DAct, a.Up);
        }

        Profiler.End(t, OpKind.Activation, backward: true);
        t = Profiler.Begin();
        b.MatmulBackward(p.DNorm, g.UpWeight, g.UpBias, p.DUp, a.Norm2, w.UpWeight, WeightLayout.OutIn);
        LoraBackward(l, LinearKind.Up, p.DNorm, p.DUp, a.Norm2);
        Profiler.End(t, OpKind.Matmul, backward: true);
        t = Profiler.Begin();
        NormalizeBackward(dres, g.Norm2Weight, g.Norm2Bias, p.DNorm, a.Mid, w.Norm2Weight, a.Mean2, a.Rstd2);
        Profiler.End(t, OpKind.Norm, backward: true);

        t = Profiler.Begin();
        b.Zero(p.DNorm);
        Profiler.End(t, OpKind.Residual, backward: true);
        t = Profiler.Begin();
        var dOut = DropoutGradient(p, dres, 1 + (2 * l));
        b.MatmulBackward(p.DAtt, g.OutWeight, g.OutBias, dOut, a.Attention, w.OutWeight, WeightLayout.OutIn);
        LoraBackward(l, LinearKind.Out, p.DAtt, dOut, a.Attention);
        Profiler.End(t, OpKind.Matmul, backward: true);
        t = Profiler.Begin();
        b.AttentionBackward(p.DQkv, p.DAtt, a.Qkv, a.Attention, a.LogSumExp, Attention, activePositions);
        Profiler.End(t, OpKind.Attention, backward: true);
        if (IsLlama)
        {
            t = Profiler.Begin();
            Rotate(p.DQkv, inverse: true);
            Profiler.End(t, OpKind.Rope, backward: true);
        }

        t = Profiler.Begin();
        b.MatmulBackward(p.DNorm, g.QkvWeight, g.QkvBias, p.DQkv, a.Norm1, w.QkvWeight, WeightLayout.OutIn);
        LoraBackward(l, LinearKind.Qkv, p.DNorm, p.DQkv, a.Norm1);
        Profiler.End(t, OpKind.Matmul, backward: true);
        t = Profiler.Begin();
        NormalizeBackward(dres, g.Norm1Weight, g.Norm1Bias, p.DNorm, p.Residual[l], w.Norm1Weight, a.Mean1, a.Rstd1);
        Profiler.End(t, OpKind.Norm, backward: true);
    }

    private void Normalize(Tensor output, Tensor mean, Tensor rstd, Tensor input, Tensor weight, Tensor bias)
    {
        if (IsLlama)
        {
            Backend.RmsNormForward(output, rstd, input, weight, Config.NormEpsilon);
        }
        else
        {
            Backend.LayerNormForward(output, mean, rstd, input, weight, bias, Config.NormEpsilon);
        }
    }

    private void NormalizeBackward(Tensor inputGrad, Tensor weightGrad, Tensor biasGrad, Tensor outputGrad, Tensor input, Tensor weight, Tensor mean, Tensor rstd)
    {
        if (IsLlama)
        {
            Backend.RmsNormBackward(inputGrad, weightGrad, outputGrad, input, weight, rstd);
        }
        else
        {
            Backend.LayerNormBackward(inputGrad, weightGrad, biasGrad, outputGrad, input, weight, mean, rstd);
        }
    }
}
