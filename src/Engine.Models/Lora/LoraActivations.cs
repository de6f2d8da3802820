using Engine.Core.Backends;
using Engine.Core.Tensors;

namespace Engine.Models.Lora;

/// <summary>
/// The adapters' buffers for one N = B·T: u = drop(x)·Aᵀ [N,r] per site (kept from forward to backward), and scratch
/// shared by all sites: du [N,r], one [N, max out] block (an adapter's output or output gradient columns) and one
/// [N, max in] block (the dropped input). One allocation.
/// </summary>
internal sealed class LoraActivations : IDisposable
{
    private readonly DeviceBuffer buffer;
    private readonly Tensor wide;
    private readonly Tensor input;

    public LoraActivations(Backend backend, LoraConfig config, IReadOnlyList<LoraSite> sites, long rows)
    {
        Rows = rows;
        ByteLength = ElementCount(config, sites, rows) * sizeof(float);
        buffer = backend.Allocate(ByteLength);
        long offset = 0;
        Tensor Take(long cols)
        {
            var t = new Tensor(buffer, offset * sizeof(float), new Shape(rows, cols), DType.F32);
            offset += rows * cols;
            return t;
        }

        U = [.. sites.Select(_ => Take(config.Rank))];
        DU = Take(config.Rank);
        wide = Take(sites.Max(s => s.OutFeatures));
        input = Take(MaxInput(sites));
    }

    public long Rows { get; }

    public long ByteLength { get; }

    /// <summary>u [N,r] of each site, in site order.</summary>
    public Tensor[] U { get; }

    /// <summary>∂L/∂u scratch [N,r].</summary>
    public Tensor DU { get; }

    public static int MaxInput(IReadOnlyList<LoraSite> sites) => sites.Max(s => s.InFeatures);

    public static long ElementCount(LoraConfig config, IReadOnlyList<LoraSite> sites, long rows) =>
        sites.Count == 0 ? 0 : rows * (((sites.Count + 1L) * config.Rank) + sites.Max(s => s.OutFeatures) + MaxInput(sites));

    /// <summary>The [N, cols] view of the output-side scratch.</summary>
    public Tensor Wide(int cols) => new(wide.Buffer!, wide.ByteOffset, new Shape(Rows, cols), DType.F32);

    /// <summary>The [N, cols] view of the input-side scratch.</summary>
    public Tensor Input(int cols) => new(input.Buffer!, input.ByteOffset, new Shape(Rows, cols), DType.F32);

    public void Dispose() => buffer.Dispose();
}
