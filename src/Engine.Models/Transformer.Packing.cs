using Engine.Core.Tensors;

namespace Engine.Models;

public sealed partial class Transformer
{
    // Device copies of the last pass's per-document position ids [B,T] and, for RoPE, the table rows they select [N,HS];
    // activePositions is empty when the pass runs plain rows (each row one document from position 0).
    private Tensor packedPositions;
    private Tensor packedRopeRows;
    private Tensor activePositions;

    /// <summary>
    /// Checks and uploads the per-document position ids of a packed batch ([B·T], row-major: 0 at every document start,
    /// then counting up by one). Rows that are plain 0…T−1 run the unpacked pass exactly. With restarts, positions
    /// select the learned position rows (GPT-2) or the RoPE rows (Llama), and attention stays inside each document.
    /// </summary>
    private void UploadPositions(ActivationPlan p, ReadOnlySpan<int> positionIds)
    {
        activePositions = default;
        if (positionIds.IsEmpty)
        {
            return;
        }

        int n = p.Batch * p.Time;
        if (positionIds.Length != n)
        {
            throw new ArgumentException($"expected B·T = {n} position ids, got {positionIds.Length}", nameof(positionIds));
        }

        bool plain = true;
        for (int i = 0; i < n; i++)
        {
            int t = i % p.Time, id = positionIds[i];
            if (id != 0 && (t == 0 || id != positionIds[i - 1] + 1))
            {
                throw new ArgumentOutOfRangeException(
                    nameof(positionIds), $"position id {id} at row {i / p.Time}, step {t}: each document starts at 0 and counts up by one");
            }

            plain &= id == t;
        }

        if (plain)
        {
            return;
        }

        if (packedPositions.IsEmpty || packedPositions.Shape[0] != p.Batch || packedPositions.Shape[1] != p.Time)
        {
            DisposePackedPositions();
            packedPositions = Backend.AllocateTensor(DType.I32, p.Batch, p.Time);
            packedRopeRows = IsLlama ? Backend.AllocateTensor(DType.F32, n, Config.HeadChannels) : default;
        }

        Backend.CopyFromHost(packedPositions, positionIds);
        if (IsLlama)
        {
            Backend.EmbeddingForward(packedRopeRows, packedPositions.Reshape(n), ropeTable);
        }

        activePositions = packedPositions;
    }

    private void DisposePackedPositions()
    {
        packedPositions.Buffer?.Dispose();
        packedRopeRows.Buffer?.Dispose();
        packedPositions = default;
        packedRopeRows = default;
        activePositions = default;
    }

    // Learned positions (GPT-2) added to the token embeddings x0 [B,T,C]: rows 0…T−1, or the packed ids' rows gathered
    // into the branch scratch first. Llama adds none (its positions rotate q and k).
    private void PositionsForward(ActivationPlan p, Tensor x0)
    {
        if (IsLlama)
        {
            return;
        }

        if (activePositions.IsEmpty)
        {
            Backend.PositionEmbeddingForward(x0, Parameters.Value(Names.PositionEmbedding));
            return;
        }

        int n = p.Batch * p.Time;
        var flat = x0.Reshape(n, Config.Channels);
        Backend.EmbeddingForward(p.Branch, activePositions.Reshape(n), Parameters.Value(Names.PositionEmbedding));
        Backend.Add(flat, flat, p.Branch);
    }

    private void PositionsBackward(Tensor dEmbedding)
    {
        if (IsLlama)
        {
            return;
        }

        if (activePositions.IsEmpty)
        {
            Backend.PositionEmbeddingBackward(Parameters.Gradient(Names.PositionEmbedding), dEmbedding);
            return;
        }

        long n = activePositions.ElementCount;
        Backend.EmbeddingBackward(Parameters.Gradient(Names.PositionEmbedding), dEmbedding.Reshape(n, Config.Channels), activePositions.Reshape(n));
    }

    // RoPE on q and k of qkv [B,T,·] (or its gradient, inverse rotation): time step t's row, or each token's packed position's.
    private void Rotate(Tensor qkv, bool inverse)
    {
        var rows = qkv;
        var table = ropeTable;
        if (!activePositions.IsEmpty)
        {
            rows = qkv.Reshape(1, qkv.Shape[0] * qkv.Shape[1], Attention.QkvChannels);
            table = packedRopeRows;
        }

        if (inverse)
        {
            Backend.RopeBackward(rows, table, Attention);
        }
        else
        {
            Backend.RopeForward(rows, table, Attention);
        }
    }
}
