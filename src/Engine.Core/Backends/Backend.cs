using Engine.Core.Tensors;

namespace Engine.Core.Backends;

/// <summary>
/// The kernel contract: every primitive the models and trainers need, implemented once per device
/// (the SIMD CPU backend always; CUDA where a GPU is present). Public methods check shapes and dtypes and
/// then call the protected <c>…Core</c> method a backend implements, so validation lives in one place.
/// <para>Shapes use the letters of the design: B batch, T time, C channels, V vocabulary, NH heads, NKV key/value heads,
/// HS head size, N = B·T rows, OC output channels. Tensors are row-major and contiguous.</para>
/// <para>Conventions: forward methods overwrite their outputs. Backward methods <b>add</b> into every gradient they are
/// given (so gradients accumulate over micro-batches and residual branches), and accept the empty tensor for a gradient
/// that is not wanted. Each output element is computed by one thread in a fixed order, so results do not depend on
/// the number of threads.</para>
/// </summary>
public abstract partial class Backend : IDisposable
{
    /// <summary>The device this backend runs on.</summary>
    public abstract Device Device { get; }

    /// <summary>A short human-readable description (device, threads, instruction set).</summary>
    public abstract string Description { get; }

    // ------------------------------------------------------------------ memory

    /// <summary>Allocates one zeroed buffer of <paramref name="byteLength"/> bytes on this device.</summary>
    public abstract DeviceBuffer Allocate(long byteLength);

    /// <summary>Memory still available on this device (host memory for the CPU, free device memory for a GPU).</summary>
    public abstract DeviceMemoryInfo QueryMemory();

    /// <summary>Allocates a zeroed tensor in a buffer of its own (for arenas, prefer <see cref="ArenaLayout"/>).</summary>
    public Tensor AllocateTensor(DType dtype, params ReadOnlySpan<long> dims)
    {
        var shape = new Shape(dims);
        return new Tensor(Allocate(shape.ElementCount * dtype.SizeOf()), 0, shape, dtype);
    }

    /// <summary>Copies host data into <paramref name="destination"/>; the element counts must match.</summary>
    public void CopyFromHost<T>(Tensor destination, ReadOnlySpan<T> source)
        where T : unmanaged
    {
        Require(destination, nameof(destination));
        RequireHostType<T>(destination, nameof(destination));
        if (source.Length != destination.ElementCount)
        {
            throw new ArgumentException($"host span of {source.Length} elements does not match {destination}");
        }

        CopyFromHostCore(destination, System.Runtime.InteropServices.MemoryMarshal.AsBytes(source));
    }

    /// <summary>Copies <paramref name="source"/> into host memory; the element counts must match.</summary>
    public void CopyToHost<T>(Tensor source, Span<T> destination)
        where T : unmanaged
    {
        Require(source, nameof(source));
        RequireHostType<T>(source, nameof(source));
        if (destination.Length != source.ElementCount)
        {
            throw new ArgumentException($"host span of {destination.Length} elements does not match {source}");
        }

        CopyToHostCore(source, System.Runtime.InteropServices.MemoryMarshal.AsBytes(destination));
    }

    /// <summary>Copies a tensor into another of the same dtype and element count on this device.</summary>
    public void Copy(Tensor destination, Tensor source)
    {
        Require(destination, nameof(destination));
        Require(source, nameof(source));
        SameDType(destination, source);
        if (destination.ElementCount != source.ElementCount)
        {
            throw new ArgumentException($"cannot copy {source} into {destination}: element counts differ");
        }

        CopyCore(destination, source);
    }

    /// <summary>Sets every element to zero.</summary>
    public void Zero(Tensor tensor)
    {
        Require(tensor, nameof(tensor));
        ZeroCore(tensor);
    }

    /// <summary>Sets every element of an f32 tensor to <paramref name="value"/>.</summary>
    public void Fill(Tensor tensor, float value)
    {
        RequireF32(tensor, nameof(tensor));
        FillCore(tensor, value);
    }

    /// <summary>Waits until all queued work on this device has finished (a no-op on the CPU).</summary>
    public abstract void Synchronize();

    // ------------------------------------------------------------------ elementwise

    /// <summary>Residual add: out = a + b (all the same shape; out may alias a or b).</summary>
    public void Add(Tensor output, Tensor a, Tensor b)
    {
        RequireF32(output, nameof(output));
        SameShape(output, a, nameof(a));
        SameShape(output, b, nameof(b));
        AddCore(output, a, b);
    }

    /// <summary>dst += src (same element count): gradient accumulation and residual backward.</summary>
    public void Accumulate(Tensor destination, Tensor source)
    {
        RequireF32(destination, nameof(destination));
        RequireF32(source, nameof(source));
        if (destination.ElementCount != source.ElementCount)
        {
            throw new ArgumentException($"cannot accumulate {source} into {destination}: element counts differ");
        }

        AccumulateCore(destination, source);
    }

    /// <summary>x *= factor, in place.</summary>
    public void Scale(Tensor tensor, float factor)
    {
        RequireF32(tensor, nameof(tensor));
        ScaleCore(tensor, factor);
    }

    // ------------------------------------------------------------------ matrix products

    /// <summary>
    /// General matrix product: C[M,N] = α·op(A)·op(B) + β·C, where op transposes when asked. A, B, C are 2-D
    /// (A is [M,K] or [K,M] when transposed; B is [K,N] or [N,K] when transposed). With β = 0, C is not read.
    /// </summary>
    public void Gemm(Tensor c, Tensor a, Tensor b, bool transposeA, bool transposeB, float alpha = 1f, float beta = 0f)
    {
        RequireF32(c, nameof(c), rank: 2);
        RequireF32(a, nameof(a), rank: 2);
        RequireF32(b, nameof(b), rank: 2);
        long m = c.Shape[0], n = c.Shape[1];
        long am = transposeA ? a.Shape[1] : a.Shape[0], ak = transposeA ? a.Shape[0] : a.Shape[1];
        long bk = transposeB ? b.Shape[1] : b.Shape[0], bn = transposeB ? b.Shape[0] : b.Shape[1];
        if (am != m || bn != n || ak != bk)
        {
            throw new ArgumentException(
                $"gemm shapes do not agree: C{c.Shape} = op(A{a.Shape}, T={transposeA}) · op(B{b.Shape}, T={transposeB})");
        }

        GemmCore(c, a, b, transposeA, transposeB, alpha, beta);
    }

    /// <summary>Linear layer: out[N,OC] = inp[N,C]·Wᵀ (+ bias[OC]), W laid out as <paramref name="layout"/> says.</summary>
    public void MatmulForward(Tensor output, Tensor input, Tensor weight, Tensor bias, WeightLayout layout)
    {
        var (n, c, oc) = MatmulDims(input, weight, layout);
        RequireF32(output, nameof(output));
        RequireDims(output, nameof(output), n, oc);
        OptionalVector(bias, nameof(bias), oc);
        MatmulForwardCore(output, input, weight, bias, layout);
        _ = c;
    }

    /// <summary>
    /// Linear layer backward: dinp += dout·W, dW += doutᵀ·inp (in W's layout), dbias += Σ_rows dout.
    /// Any of the three gradients may be empty.
    /// </summary>
    public void MatmulBackward(
        Tensor inputGrad, Tensor weightGrad, Tensor biasGrad, Tensor outputGrad, Tensor input, Tensor weight, WeightLayout layout)
    {
        var (n, c, oc) = MatmulDims(input, weight, layout);
        RequireF32(outputGrad, nameof(outputGrad));
        RequireDims(outputGrad, nameof(outputGrad), n, oc);
        if (!inputGrad.IsEmpty)
        {
            SameShape(input, inputGrad, nameof(inputGrad));
        }

        if (!weightGrad.IsEmpty)
        {
            SameShape(weight, weightGrad, nameof(weightGrad));
        }

        OptionalVector(biasGrad, nameof(biasGrad), oc);
        MatmulBackwardCore(inputGrad, weightGrad, biasGrad, outputGrad, input, weight, layout);
        _ = c;
    }

    // ------------------------------------------------------------------ embeddings

    /// <summary>Token embedding: out[n,:] = table[tokens[n],:]. out is [N,C], tokens [N] (i32), table [V,C].</summary>
    public void EmbeddingForward(Tensor output, Tensor tokens, Tensor table)
    {
        RequireF32(table, nameof(table), rank: 2);
        RequireTokens(tokens, nameof(tokens));
        RequireF32(output, nameof(output));
        RequireDims(output, nameof(output), tokens.ElementCount, table.Shape[1]);
        EmbeddingForwardCore(output, tokens, table);
    }

    /// <summary>Token embedding backward: tableGrad[tokens[n],:] += dout[n,:].</summary>
    public void EmbeddingBackward(Tensor tableGrad, Tensor outputGrad, Tensor tokens)
    {
        RequireF32(tableGrad, nameof(tableGrad), rank: 2);
        RequireTokens(tokens, nameof(tokens));
        RequireDims(outputGrad, nameof(outputGrad), tokens.ElementCount, tableGrad.Shape[1]);
        EmbeddingBackwardCore(tableGrad, outputGrad, tokens);
    }

    /// <summary>Learned positions (GPT-2): x[b,t,:] += wpe[positionOffset + t,:]. x is [B,T,C], wpe [maxT,C].</summary>
    public void PositionEmbeddingForward(Tensor x, Tensor positions, int positionOffset = 0)
    {
        RequireF32(x, nameof(x), rank: 3);
        RequireF32(positions, nameof(positions), rank: 2);
        if (positions.Shape[1] != x.Shape[2] || positionOffset < 0 || positionOffset + x.Shape[1] > positions.Shape[0])
        {
            throw new ArgumentException($"positions {positions.Shape} cannot serve x {x.Shape} from position {positionOffset}");
        }

        PositionEmbeddingForwardCore(x, positions, positionOffset);
    }

    /// <summary>Learned positions backward: dwpe[t,:] += Σ_b dx[b,t,:] (t counted from 0).</summary>
    public void PositionEmbeddingBackward(Tensor positionsGrad, Tensor xGrad)
    {
        RequireF32(xGrad, nameof(xGrad), rank: 3);
        RequireF32(positionsGrad, nameof(positionsGrad), rank: 2);
        if (positionsGrad.Shape[1] != xGrad.Shape[2] || xGrad.Shape[1] > positionsGrad.Shape[0])
        {
            throw new ArgumentException($"positions gradient {positionsGrad.Shape} cannot take x gradient {xGrad.Shape}");
        }

        PositionEmbeddingBackwardCore(positionsGrad, xGrad);
    }

    // ------------------------------------------------------------------ normalisation

    /// <summary>
    /// LayerNorm over the last dimension: out = (x − μ)·rstd·w + b, rstd = 1/√(var + ε) (biased variance).
    /// Saves mean[N] and rstd[N] for backward. Bias may be empty.
    /// </summary>
    public void LayerNormForward(Tensor output, Tensor mean, Tensor rstd, Tensor input, Tensor weight, Tensor bias, float epsilon)
    {
        var (n, c) = RowsAndChannels(input, nameof(input));
        SameShape(input, output, nameof(output));
        RequireDims(mean, nameof(mean), n);
        RequireDims(rstd, nameof(rstd), n);
        RequireDims(weight, nameof(weight), c);
        OptionalVector(bias, nameof(bias), c);
        LayerNormForwardCore(output, mean, rstd, input, weight, bias, epsilon);
    }

    /// <summary>LayerNorm backward: adds into dinp, dweight and dbias (each may be empty).</summary>
    public void LayerNormBackward(
        Tensor inputGrad, Tensor weightGrad, Tensor biasGrad, Tensor outputGrad, Tensor input, Tensor weight, Tensor mean, Tensor rstd)
    {
        var (n, c) = RowsAndChannels(input, nameof(input));
        SameShape(input, outputGrad, nameof(outputGrad));
        OptionalShape(input, inputGrad, nameof(inputGrad));
        RequireDims(weight, nameof(weight), c);
        OptionalVector(weightGrad, nameof(weightGrad), c);
        OptionalVector(biasGrad, nameof(biasGrad), c);
        RequireDims(mean, nameof(mean), n);
        RequireDims(rstd, nameof(rstd), n);
        LayerNormBackwardCore(inputGrad, weightGrad, biasGrad, outputGrad, input, weight, mean, rstd);
    }

    /// <summary>RMSNorm over the last dimension: out = x·rstd·w, rstd = 1/√(mean(x²) + ε). Saves rstd[N].</summary>
    public void RmsNormForward(Tensor output, Tensor rstd, Tensor input, Tensor weight, float epsilon)
    {
        var (n, c) = RowsAndChannels(input, nameof(input));
        SameShape(input, output, nameof(output));
        RequireDims(rstd, nameof(rstd), n);
        RequireDims(weight, nameof(weight), c);
        RmsNormForwardCore(output, rstd, input, weight, epsilon);
    }

    /// <summary>RMSNorm backward: adds into dinp and dweight (either may be empty).</summary>
    public void RmsNormBackward(Tensor inputGrad, Tensor weightGrad, Tensor outputGrad, Tensor input, Tensor weight, Tensor rstd)
    {
        var (n, c) = RowsAndChannels(input, nameof(input));
        SameShape(input, outputGrad, nameof(outputGrad));
        OptionalShape(input, inputGrad, nameof(inputGrad));
        RequireDims(weight, nameof(weight), c);
        OptionalVector(weightGrad, nameof(weightGrad), c);
        RequireDims(rstd, nameof(rstd), n);
        RmsNormBackwardCore(inputGrad, weightGrad, outputGrad, input, weight, rstd);
    }

    // ------------------------------------------------------------------ activations

    /// <summary>GELU, tanh approximation: out = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).</summary>
    public void GeluForward(Tensor output, Tensor input)
    {
        RequireF32(input, nameof(input));
        SameShape(input, output, nameof(output));
        GeluForwardCore(output, input);
    }

    /// <summary>GELU backward: dinp += gelu'(x)·dout.</summary>
    public void GeluBackward(Tensor inputGrad, Tensor outputGrad, Tensor input)
    {
        RequireF32(input, nameof(input));
        SameShape(input, inputGrad, nameof(inputGrad));
        SameShape(input, outputGrad, nameof(outputGrad));
        GeluBackwardCore(inputGrad, outputGrad, input);
    }

    /// <summary>
    /// SwiGLU: out[N,F] = silu(g)·u where inp[N,2F] holds the gate g in its first F columns and the up projection u
    /// in the last F (one fused projection), silu(g) = g·σ(g).
    /// </summary>
    public void SwiGluForward(Tensor output, Tensor input)
    {
        var (n, f2) = RowsAndChannels(input, nameof(input));
        RequireF32(output, nameof(output));
        if (f2 % 2 != 0 || output.Shape.Rows != n || output.Shape.Last * 2 != f2)
        {
            throw new ArgumentException($"SwiGLU output {output.Shape} does not pair with input {input.Shape} ([N,2F] -> [N,F])");
        }

        SwiGluForwardCore(output, input);
    }

    /// <summary>SwiGLU backward: dinp[N,2F] += (dg, du).</summary>
    public void SwiGluBackward(Tensor inputGrad, Tensor outputGrad, Tensor input)
    {
        var (n, f2) = RowsAndChannels(input, nameof(input));
        SameShape(input, inputGrad, nameof(inputGrad));
        RequireF32(outputGrad, nameof(outputGrad));
        if (outputGrad.Shape.Rows != n || outputGrad.Shape.Last * 2 != f2)
        {
            throw new ArgumentException($"SwiGLU gradient {outputGrad.Shape} does not pair with input {input.Shape}");
        }

        SwiGluBackwardCore(inputGrad, outputGrad, input);
    }

    /// <summary>
    /// Inverted dropout: out = x·keep/(1 − p), keep drawn from <see cref="DropoutStream"/> at (seed, offset + i).
    /// p = 0 copies. out may alias inp.
    /// </summary>
    public void DropoutForward(Tensor output, Tensor input, float probability, ulong seed, ulong offset)
    {
        RequireF32(input, nameof(input));
        SameShape(input, output, nameof(output));
        RequireProbability(probability);
        DropoutForwardCore(output, input, probability, seed, offset);
    }

    /// <summary>Dropout backward: dinp += dout·keep/(1 − p), with the same (seed, offset) as the forward.</summary>
    public void DropoutBackward(Tensor inputGrad, Tensor outputGrad, float probability, ulong seed, ulong offset)
    {
        RequireF32(outputGrad, nameof(outputGrad));
        SameShape(outputGrad, inputGrad, nameof(inputGrad));
        RequireProbability(probability);
        DropoutBackwardCore(inputGrad, outputGrad, probability, seed, offset);
    }

    // ------------------------------------------------------------------ attention

    /// <summary>
    /// Rotary position embedding applied in place to the q and k heads of qkv [B,T,(NH+2·NKV)·HS], "rotate half"
    /// convention: (x₁, x₂) ↦ (x₁cos − x₂sin, x₂cos + x₁sin) with the halves of each head. table is [maxT, HS]
    /// (see <see cref="RopeTables.Fill"/>); row positionOffset + t serves time step t.
    /// </summary>
    public void RopeForward(Tensor qkv, Tensor table, AttentionShape shape, int positionOffset = 0)
    {
        CheckRope(qkv, table, shape, positionOffset);
        RopeForwardCore(qkv, table, shape, positionOffset);
    }

    /// <summary>RoPE backward: rotates the q and k parts of dqkv in place by the inverse rotation (v is untouched).</summary>
    public void RopeBackward(Tensor qkvGrad, Tensor table, AttentionShape shape, int positionOffset = 0)
    {
        CheckRope(qkvGrad, table, shape, positionOffset);
        RopeBackwardCore(qkvGrad, table, shape, positionOffset);
    }

    /// <summary>
    /// Causal self-attention, FlashAttention style: out[B,T,NH·HS] = softmax(q·kᵀ/√HS + causal mask)·v for every head,
    /// query head h reading key/value head h / (NH/NKV). Saves the log-sum-exp of every score row in lse [B,NH,T]
    /// instead of the [T,T] probabilities.
    /// <para>
    /// Packed rows (padding-free packing): <paramref name="positionIds"/> i32 [B,T] holds each token's position within its
    /// document, 0 at every document start, so query t sees only keys t − positionIds[b,t] … t and attention never crosses
    /// a document boundary (block-diagonal causal attention, as flash-attn's varlen kernels). Key tiles wholly before a
    /// query tile's document are skipped. Empty (the default): every row is one document. Values outside [0, t] are clamped.
    /// </para>
    /// </summary>
    public void AttentionForward(Tensor output, Tensor logSumExp, Tensor qkv, AttentionShape shape, Tensor positionIds = default)
    {
        var (b, t) = CheckAttention(qkv, shape);
        RequireF32(output, nameof(output));
        RequireDims(output, nameof(output), b, t, shape.OutChannels);
        RequireDims(logSumExp, nameof(logSumExp), b, shape.NumHeads, t);
        CheckPositionIds(positionIds, b, t);
        AttentionForwardCore(output, logSumExp, qkv, shape, positionIds);
    }

    /// <summary>
    /// Causal self-attention backward: dqkv += ∂L/∂qkv, recomputing the probabilities from q, k and lse. Pass the
    /// <paramref name="positionIds"/> the forward had (see <see cref="AttentionForward"/>).
    /// </summary>
    public void AttentionBackward(
        Tensor qkvGrad, Tensor outputGrad, Tensor qkv, Tensor output, Tensor logSumExp, AttentionShape shape, Tensor positionIds = default)
    {
        var (b, t) = CheckAttention(qkv, shape);
        SameShape(qkv, qkvGrad, nameof(qkvGrad));
        RequireDims(output, nameof(output), b, t, shape.OutChannels);
        SameShape(output, outputGrad, nameof(outputGrad));
        RequireDims(logSumExp, nameof(logSumExp), b, shape.NumHeads, t);
        CheckPositionIds(positionIds, b, t);
        AttentionBackwardCore(qkvGrad, outputGrad, qkv, output, logSumExp, shape, positionIds);
    }

    // ------------------------------------------------------------------ losses

    /// <summary>
    /// Softmax cross-entropy per row: losses[n] = logsumexp(logits[n,:]) − logits[n, targets[n]]; rows whose target is
    /// negative (ignored) get 0. logits is [N,V], targets [N] (i32), losses [N].
    /// </summary>
    public void CrossEntropyForward(Tensor losses, Tensor logits, Tensor targets)
    {
        CheckCrossEntropy(losses, logits, targets);
        CrossEntropyForwardCore(losses, logits, targets);
    }

    /// <summary>
    /// Fused softmax cross-entropy forward and backward: writes losses as <see cref="CrossEntropyForward"/> and
    /// <b>overwrites</b> logits with dlogits = gradScale·(softmax(logits) − onehot(target)) (zero rows for ignored
    /// targets), so no probability tensor is ever kept beside the logits.
    /// </summary>
    public void CrossEntropyForwardBackward(Tensor losses, Tensor logits, Tensor targets, float gradScale)
    {
        CheckCrossEntropy(losses, logits, targets);
        CrossEntropyForwardBackwardCore(losses, logits, targets, gradScale);
    }

    // ------------------------------------------------------------------ optimizer

    /// <summary>
    /// Fused AdamW over one contiguous run of parameters: g = grad·GradScale; m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
    /// θ ← θ − η·(m̂/(√v̂ + ε) + λ·θ) with bias-corrected m̂, v̂. All four tensors have the same element count.
    /// </summary>
    public void AdamW(Tensor parameters, Tensor gradients, Tensor firstMoment, Tensor secondMoment, in AdamWParameters hyper)
    {
        RequireF32(parameters, nameof(parameters));
        SameCount(parameters, gradients, nameof(gradients));
        SameCount(parameters, firstMoment, nameof(firstMoment));
        SameCount(parameters, secondMoment, nameof(secondMoment));
        if (hyper.Step < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(hyper), $"AdamW step must be 1 or more, got {hyper.Step}");
        }

        AdamWCore(parameters, gradients, firstMoment, secondMoment, hyper);
    }

    /// <summary>Σ x² over all elements, accumulated in double in a fixed order (global gradient norm = √ of it).</summary>
    public double SquaredNorm(Tensor tensor)
    {
        RequireF32(tensor, nameof(tensor));
        return SquaredNormCore(tensor);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the backend's resources (worker threads, contexts).</summary>
    protected virtual void Dispose(bool disposing)
    {
    }

#pragma warning disable CS1591 // The Core methods are documented by their public counterparts above.
    protected abstract void CopyFromHostCore(Tensor destination, ReadOnlySpan<byte> source);
    protected abstract void CopyToHostCore(Tensor source, Span<byte> destination);
    protected abstract void CopyCore(Tensor destination, Tensor source);
    protected abstract void ZeroCore(Tensor tensor);
    protected abstract void FillCore(Tensor tensor, float value);
    protected abstract void AddCore(Tensor output, Tensor a, Tensor b);
    protected abstract void AccumulateCore(Tensor destination, Tensor source);
    protected abstract void ScaleCore(Tensor tensor, float factor);
    protected abstract void GemmCore(Tensor c, Tensor a, Tensor b, bool transposeA, bool transposeB, float alpha, float beta);
    protected abstract void MatmulForwardCore(Tensor output, Tensor input, Tensor weight, Tensor bias, WeightLayout layout);
    protected abstract void MatmulBackwardCore(
        Tensor inputGrad, Tensor weightGrad, Tensor biasGrad, Tensor outputGrad, Tensor input, Tensor weight, WeightLayout layout);
    protected abstract void EmbeddingForwardCore(Tensor output, Tensor tokens, Tensor table);
    protected abstract void EmbeddingBackwardCore(Tensor tableGrad, Tensor outputGrad, Tensor tokens);
    protected abstract void PositionEmbeddingForwardCore(Tensor x, Tensor positions, int positionOffset);
    protected abstract void PositionEmbeddingBackwardCore(Tensor positionsGrad, Tensor xGrad);
    protected abstract void LayerNormForwardCore(Tensor output, Tensor mean, Tensor rstd, Tensor input, Tensor weight, Tensor bias, float epsilon);
    protected abstract void LayerNormBackwardCore(
        Tensor inputGrad, Tensor weightGrad, Tensor biasGrad, Tensor outputGrad, Tensor input, Tensor weight, Tensor mean, Tensor rstd);
    protected abstract void RmsNormForwardCore(Tensor output, Tensor rstd, Tensor input, Tensor weight, float epsilon);
    protected abstract void RmsNormBackwardCore(Tensor inputGrad, Tensor weightGrad, Tensor outputGrad, Tensor input, Tensor weight, Tensor rstd);
    protected abstract void GeluForwardCore(Tensor output, Tensor input);
    protected abstract void GeluBackwardCore(Tensor inputGrad, Tensor outputGrad, Tensor input);
    protected abstract void SwiGluForwardCore(Tensor output, Tensor input);
    protected abstract void SwiGluBackwardCore(Tensor inputGrad, Tensor outputGrad, Tensor input);
    protected abstract void DropoutForwardCore(Tensor output, Tensor input, float probability, ulong seed, ulong offset);
    protected abstract void DropoutBackwardCore(Tensor inputGrad, Tensor outputGrad, float probability, ulong seed, ulong offset);
    protected abstract void RopeForwardCore(Tensor qkv, Tensor table, AttentionShape shape, int positionOffset);
    protected abstract void RopeBackwardCore(Tensor qkvGrad, Tensor table, AttentionShape shape, int positionOffset);
    protected abstract void AttentionForwardCore(Tensor output, Tensor logSumExp, Tensor qkv, AttentionShape shape, Tensor positionIds);
    protected abstract void AttentionBackwardCore(Tensor qkvGrad, Tensor outputGrad, Tensor qkv, Tensor output, Tensor logSumExp, AttentionShape shape, Tensor positionIds);
    protected abstract void CrossEntropyForwardCore(Tensor losses, Tensor logits, Tensor targets);
    protected abstract void CrossEntropyForwardBackwardCore(Tensor losses, Tensor logits, Tensor targets, float gradScale);
    protected abstract void AdamWCore(Tensor parameters, Tensor gradients, Tensor firstMoment, Tensor secondMoment, in AdamWParameters hyper);
    protected abstract double SquaredNormCore(Tensor tensor);
#pragma warning restore CS1591

    // ------------------------------------------------------------------ validation helpers

    private void Require(Tensor t, string name)
    {
        if (t.IsEmpty)
        {
            throw new ArgumentException($"{name} is required but empty", name);
        }

        if (t.Device != Device)
        {
            throw new ArgumentException($"{name} is on {t.Device}, this backend runs on {Device}", name);
        }
    }

    private void RequireF32(Tensor t, string name, int rank = -1)
    {
        Require(t, name);
        if (t.DType != DType.F32)
        {
            throw new ArgumentException($"{name} must be f32, got {t.DType.Name()}", name);
        }

        if (rank >= 0 && t.Shape.Rank != rank)
        {
            throw new ArgumentException($"{name} must have rank {rank}, got {t.Shape}", name);
        }
    }

    private void RequireTokens(Tensor t, string name)
    {
        Require(t, name);
        if (t.DType != DType.I32)
        {
            throw new ArgumentException($"{name} must be i32 token ids, got {t.DType.Name()}", name);
        }
    }

    private static void RequireHostType<T>(Tensor t, string name)
        where T : unmanaged
    {
        if (System.Runtime.CompilerServices.Unsafe.SizeOf<T>() != t.DType.SizeOf())
        {
            throw new ArgumentException($"{typeof(T).Name} elements do not match {name} of dtype {t.DType.Name()}", name);
        }
    }

    private void RequireDims(Tensor t, string name, params ReadOnlySpan<long> dims)
    {
        Require(t, name);
        var expected = new Shape(dims);
        bool same = t.Shape == expected || (t.ElementCount == expected.ElementCount && t.Shape.Last == expected.Last);
        if (!same)
        {
            throw new ArgumentException($"{name} must be {expected}, got {t.Shape}", name);
        }
    }

    private void OptionalVector(Tensor t, string name, long length)
    {
        if (!t.IsEmpty)
        {
            RequireF32(t, name);
            RequireDims(t, name, length);
        }
    }

    private void OptionalShape(Tensor reference, Tensor t, string name)
    {
        if (!t.IsEmpty)
        {
            SameShape(reference, t, name);
        }
    }

    private void SameShape(Tensor reference, Tensor t, string name)
    {
        RequireF32(t, name);
        if (t.ElementCount != reference.ElementCount || t.Shape.Last != reference.Shape.Last)
        {
            throw new ArgumentException($"{name} must match shape {reference.Shape}, got {t.Shape}", name);
        }
    }

    private void SameCount(Tensor reference, Tensor t, string name)
    {
        RequireF32(t, name);
        if (t.ElementCount != reference.ElementCount)
        {
            throw new ArgumentException($"{name} must have {reference.ElementCount} elements, got {t.ElementCount}", name);
        }
    }

    private static void SameDType(Tensor a, Tensor b)
    {
        if (a.DType != b.DType)
        {
            throw new ArgumentException($"dtypes differ: {a.DType.Name()} and {b.DType.Name()}");
        }
    }

    private (long Rows, long Channels) RowsAndChannels(Tensor t, string name)
    {
        RequireF32(t, name);
        if (t.Shape.Rank < 1)
        {
            throw new ArgumentException($"{name} must have at least one dimension", name);
        }

        return (t.Shape.Rows, t.Shape.Last);
    }

    private (long N, long C, long OC) MatmulDims(Tensor input, Tensor weight, WeightLayout layout)
    {
        var (n, c) = RowsAndChannels(input, nameof(input));
        RequireF32(weight, nameof(weight), rank: 2);
        long wc = layout == WeightLayout.OutIn ? weight.Shape[1] : weight.Shape[0];
        long oc = layout == WeightLayout.OutIn ? weight.Shape[0] : weight.Shape[1];
        if (wc != c)
        {
            throw new ArgumentException($"weight {weight.Shape} ({layout}) does not take {c} input channels");
        }

        return (n, c, oc);
    }

    private static void RequireProbability(float p)
    {
        if (!(p >= 0f && p < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(p), $"dropout probability must be in [0, 1), got {p}");
        }
    }

    private void CheckRope(Tensor qkv, Tensor table, AttentionShape shape, int positionOffset)
    {
        var (_, t) = CheckAttention(qkv, shape);
        RequireF32(table, nameof(table), rank: 2);
        if (shape.HeadSize % 2 != 0)
        {
            throw new ArgumentException($"RoPE needs an even head size, got {shape.HeadSize}");
        }

        if (table.Shape[1] != shape.HeadSize || positionOffset < 0 || positionOffset + t > table.Shape[0])
        {
            throw new ArgumentException(
                $"RoPE table {table.Shape} cannot serve {t} positions from {positionOffset} with head size {shape.HeadSize}");
        }
    }

    private void CheckPositionIds(Tensor positionIds, long b, long t)
    {
        if (!positionIds.IsEmpty)
        {
            RequireTokens(positionIds, nameof(positionIds));
            RequireDims(positionIds, nameof(positionIds), b, t);
        }
    }

    private (long B, long T) CheckAttention(Tensor qkv, AttentionShape shape)
    {
        RequireF32(qkv, nameof(qkv), rank: 3);
        if (shape.NumHeads <= 0 || shape.NumKvHeads <= 0 || shape.HeadSize <= 0 || shape.NumHeads % shape.NumKvHeads != 0)
        {
            throw new ArgumentException($"invalid attention shape {shape}: NH must be a positive multiple of NKV");
        }

        if (qkv.Shape[2] != shape.QkvChannels)
        {
            throw new ArgumentException($"qkv {qkv.Shape} must have {shape.QkvChannels} channels for {shape}");
        }

        return (qkv.Shape[0], qkv.Shape[1]);
    }

    private void CheckCrossEntropy(Tensor losses, Tensor logits, Tensor targets)
    {
        RequireF32(logits, nameof(logits));
        RequireTokens(targets, nameof(targets));
        long n = logits.Shape.Rows;
        RequireDims(targets, nameof(targets), n);
        RequireF32(losses, nameof(losses));
        RequireDims(losses, nameof(losses), n);
    }
}
