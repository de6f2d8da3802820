namespace Engine.Cuda.Runtime;

/// <summary>
/// One <c>extern "C"</c> kernel: the file it lives in, its name, and its parameter list as one letter per parameter
/// (p pointer, l 64-bit integer, i 32-bit integer, I unsigned 32-bit, u unsigned 64-bit, f float). Every launch checks
/// its arguments against this list, and a test checks the list against the PTX NVRTC produces, so a kernel and its
/// caller cannot drift apart unnoticed even on a machine without a GPU.
/// </summary>
/// <param name="Module">The <c>.cu</c> file.</param>
/// <param name="Name">The entry point.</param>
/// <param name="Parameters">Parameter kinds, one letter each.</param>
internal sealed record KernelSignature(string Module, string Name, string Parameters)
{
    /// <summary>The PTX type of each parameter (<c>.u64</c>, <c>.u32</c>, <c>.f32</c>) as NVRTC declares it.</summary>
    public IEnumerable<string> PtxTypes => Parameters.Select(k => k switch
    {
        'p' or 'l' or 'u' => ".u64",
        'i' or 'I' => ".u32",
        'f' => ".f32",
        _ => throw new InvalidOperationException($"unknown parameter kind '{k}' in {Name}"),
    });
}

/// <summary>Every kernel of <c>kernels/</c> the CUDA backend launches.</summary>
internal static class Kernels
{
    public static readonly KernelSignature Fill = new("elementwise.cu", "fill_f32", "plf");
    public static readonly KernelSignature Add = new("elementwise.cu", "add_f32", "pppl");
    public static readonly KernelSignature Accumulate = new("elementwise.cu", "accumulate_f32", "ppl");
    public static readonly KernelSignature Scale = new("elementwise.cu", "scale_f32", "plf");
    public static readonly KernelSignature CopyColumns = new("elementwise.cu", "copy_columns_f32", "ppliiiiii");

    public static readonly KernelSignature EmbeddingForward = new("embedding.cu", "embedding_forward", "pppiip");
    public static readonly KernelSignature EmbeddingBackward = new("embedding.cu", "embedding_backward", "pppiii");
    public static readonly KernelSignature PositionForward = new("embedding.cu", "position_forward", "ppliii");
    public static readonly KernelSignature PositionBackward = new("embedding.cu", "position_backward", "ppiii");

    public static readonly KernelSignature LayerNormForward = new("layernorm.cu", "layernorm_forward", "ppppppiif");
    public static readonly KernelSignature LayerNormBackwardInput = new("layernorm.cu", "layernorm_backward_input", "ppppppii");
    public static readonly KernelSignature LayerNormBackwardPartials = new("layernorm.cu", "layernorm_backward_partials", "ppppppiii");

    public static readonly KernelSignature RmsNormForward = new("rmsnorm.cu", "rmsnorm_forward", "ppppiif");
    public static readonly KernelSignature RmsNormBackwardInput = new("rmsnorm.cu", "rmsnorm_backward_input", "pppppii");
    public static readonly KernelSignature RmsNormBackwardPartials = new("rmsnorm.cu", "rmsnorm_backward_partials", "ppppiii");

    public static readonly KernelSignature BiasAdd = new("matmul.cu", "bias_add", "ppli");
    public static readonly KernelSignature ColumnPartials = new("matmul.cu", "column_partials", "ppiii");
    public static readonly KernelSignature ColumnFold = new("matmul.cu", "column_fold", "ppii");

    public static readonly KernelSignature GeluForward = new("activations.cu", "gelu_forward", "ppl");
    public static readonly KernelSignature GeluBackward = new("activations.cu", "gelu_backward", "pppl");
    public static readonly KernelSignature SwiGluForward = new("activations.cu", "swiglu_forward", "ppli");
    public static readonly KernelSignature SwiGluBackward = new("activations.cu", "swiglu_backward", "pppli");
    public static readonly KernelSignature Dropout = new("activations.cu", "dropout_apply", "ppluuIfi");

    public static readonly KernelSignature Rope = new("rope.cu", "rope_rotate", "ppliiiiii");

    /// <summary>decode_append: (kCache, vCache, qkv, positions, n, Tq, NH, NKV, HS, maxT).</summary>
    public static readonly KernelSignature DecodeAppend = new("decode.cu", "decode_append", "ppppliiiii");

    /// <summary>attention_decode: (out, qkv, kCache, vCache, positions, Tq, NH, NKV, HS, maxT, scale).</summary>
    public static readonly KernelSignature AttentionDecode = new("decode.cu", "attention_decode", "pppppiiiiif");

    public static readonly KernelSignature CrossEntropy = new("cross_entropy.cu", "cross_entropy", "pppiifp");

    public static readonly KernelSignature AdamW = new("optimizer.cu", "adamw", "pppplffffffff");
    public static readonly KernelSignature SquaredNormPartials = new("optimizer.cu", "squared_norm_partials", "ppll");
    public static readonly KernelSignature SquaredNormFold = new("optimizer.cu", "squared_norm_fold", "ppi");

    public static readonly KernelSignature AttentionDelta = new("attention.cu", "attention_backward_delta", "pppliii");

    /// <summary>(state, z, ld, row0, v0, vc, V, targets, mask, invT, error): one vocabulary chunk folded into the row state.</summary>
    public static readonly KernelSignature LogProbChunkStats = new("logprob.cu", "logprob_chunk_stats", "ppiliiippfp");

    /// <summary>(logProbs, rowStats, entropy, kl, coef, state, row0, rows, V, targets, mask, reference, gLogp, gEntropy, gKl, invT).</summary>
    public static readonly KernelSignature LogProbFinish = new("logprob.cu", "logprob_finish", "ppppppliippppppf");

    /// <summary>(coef, rowStats, hidden, weight, logits, row0, rows, C, V, targets, mask, reference, gLogp, gEntropy, gKl, invT, error).</summary>
    public static readonly KernelSignature LogProbBackwardRows = new("logprob.cu", "logprob_backward_rows", "pppppliiippppppfp");

    /// <summary>(dz, z, ld, coef, row0, v0, vc, V, targets, mask, invT, add).</summary>
    public static readonly KernelSignature LogProbChunkGrad = new("logprob.cu", "logprob_chunk_grad", "ppipliiippfi");

    public static readonly KernelSignature SequenceSum = new("sequence.cu", "sequence_sum", "pppiii");
    public static readonly KernelSignature SequenceSumBackward = new("sequence.cu", "sequence_sum_backward", "pppiii");

    public static readonly KernelSignature Gae = new("rl.cu", "gae", "pppppiiff");
    public static readonly KernelSignature MaskedMomentsPartials = new("rl.cu", "masked_moments_partials", "pppll");
    public static readonly KernelSignature MaskedWhitenFold = new("rl.cu", "masked_whiten_fold", "ppifi");
    public static readonly KernelSignature MaskedWhitenApply = new("rl.cu", "masked_whiten_apply", "pppl");
    public static readonly KernelSignature PpoCountPartials = new("rl.cu", "ppo_count_partials", "ppll");

    /// <summary>(partials, countPartials, 10 token arrays, n, perBlock, clipLow, clipHigh, valueClip, policyScale, valueScale).</summary>
    public static readonly KernelSignature PpoPartials = new("rl.cu", "ppo_partials", "ppppppppppppllfffff");
    public static readonly KernelSignature PpoFold = new("rl.cu", "ppo_fold", "ppiii");
    public static readonly KernelSignature KlRewardsRows = new("rl.cu", "kl_rewards_rows", "ppppppiiff");
    public static readonly KernelSignature KlRewardsFold = new("rl.cu", "kl_rewards_fold", "ppi");

    /// <summary>(pairGrad, result, scores, chosen, rejected, weights, margins, P, R, type, ε, β, c, gradScale, wantGrad, error).</summary>
    public static readonly KernelSignature PairwisePairs = new("rl.cu", "pairwise_pairs", "pppppppiiiffffip");
    public static readonly KernelSignature PairwiseScatter = new("rl.cu", "pairwise_scatter", "pppppii");

    /// <summary>(pairGrad, result, ranks, policy, reference, lengths, chosen, rejected, weights, P, R, type, β, γ, ε, baseline, α, w_D, w_U, gradScale, wantGrad, error).</summary>
    public static readonly KernelSignature PreferencePairs = new("rl.cu", "preference_pairs", "pppppppppiiiffffffffip");

    /// <summary>(advantages, partials, result, rewards, groups, G, baseline, scaling, ε).</summary>
    public static readonly KernelSignature GroupAdvantages = new("grpo.cu", "group_advantages", "ppppiiiif");
    public static readonly KernelSignature GrpoRowCount = new("grpo.cu", "grpo_row_count", "ppppi");

    /// <summary>(rows, logp, old, ref, A, mask, entropy, dlogp, B, T, ε_low, ε_high, β, sequence, lossType, L_max, N, gradScale).</summary>
    public static readonly KernelSignature GrpoRowLoss = new("grpo.cu", "grpo_row_loss", "ppppppppiifffiiiff");
    public static readonly KernelSignature GrpoFold = new("grpo.cu", "grpo_fold", "ppi");

    /// <summary>Head-size classes of the attention kernels: the entry points for HS ≤ 64, ≤ 128 and ≤ 256.</summary>
    public static readonly int[] AttentionHeadClasses = [64, 128, 256];

    /// <summary>attention_forward_{64,128,256}: (out, lse, qkv, positions or null, T, NH, NKV, HS, scale).</summary>
    public static readonly KernelSignature[] AttentionForward =
        [.. AttentionHeadClasses.Select(c => new KernelSignature("attention.cu", $"attention_forward_{c}", "ppppiiiif"))];

    /// <summary>attention_backward_dq_{64,128,256}: (dqkv, dout, qkv, lse, delta, positions or null, T, NH, NKV, HS, scale).</summary>
    public static readonly KernelSignature[] AttentionBackwardDq =
        [.. AttentionHeadClasses.Select(c => new KernelSignature("attention.cu", $"attention_backward_dq_{c}", "ppppppiiiif"))];

    /// <summary>attention_backward_dkdv_{64,128,256}: same parameters as the dq kernels.</summary>
    public static readonly KernelSignature[] AttentionBackwardDkDv =
        [.. AttentionHeadClasses.Select(c => new KernelSignature("attention.cu", $"attention_backward_dkdv_{c}", "ppppppiiiif"))];

    /// <summary>Every signature above.</summary>
    public static IEnumerable<KernelSignature> All =>
    [
        Fill, Add, Accumulate, Scale, CopyColumns,
        EmbeddingForward, EmbeddingBackward, PositionForward, PositionBackward,
        LayerNormForward, LayerNormBackwardInput, LayerNormBackwardPartials,
        RmsNormForward, RmsNormBackwardInput, RmsNormBackwardPartials,
        BiasAdd, ColumnPartials, ColumnFold,
        GeluForward, GeluBackward, SwiGluForward, SwiGluBackward, Dropout,
        Rope, DecodeAppend, AttentionDecode, CrossEntropy, AdamW, SquaredNormPartials, SquaredNormFold, AttentionDelta,
        LogProbChunkStats, LogProbFinish, LogProbBackwardRows, LogProbChunkGrad, SequenceSum, SequenceSumBackward,
        Gae, MaskedMomentsPartials, MaskedWhitenFold, MaskedWhitenApply, PpoCountPartials, PpoPartials, PpoFold,
        KlRewardsRows, KlRewardsFold, PairwisePairs, PairwiseScatter, PreferencePairs, GroupAdvantages, GrpoRowCount, GrpoRowLoss, GrpoFold,
        .. AttentionForward, .. AttentionBackwardDq, .. AttentionBackwardDkDv,
    ];
}
