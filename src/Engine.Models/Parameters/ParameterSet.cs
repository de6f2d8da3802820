using Engine.Core.Backends;
using Engine.Core.Tensors;

namespace Engine.Models.Parameters;

/// <summary>What a parameter is, which decides its initialisation and whether weight decay applies.</summary>
public enum ParameterKind
{
    /// <summary>A projection matrix: weight decay applies.</summary>
    Matrix,
    /// <summary>A token or position embedding table: no decay by default.</summary>
    Embedding,
    /// <summary>A LayerNorm/RMSNorm gain: no decay by default.</summary>
    Norm,
    /// <summary>A bias vector: no decay by default.</summary>
    Bias,
}

/// <summary>A named parameter: its shape, kind and element offset inside the flat buffers.</summary>
/// <param name="Name">Engine's name, e.g. <c>layers.0.attn.qkv.weight</c>.</param>
/// <param name="Shape">Shape; matrices are stored [out, in].</param>
/// <param name="Kind">Matrix, embedding, norm or bias.</param>
/// <param name="Offset">Offset in elements inside <see cref="ParameterSet.Values"/> (and the gradient and moment buffers).</param>
public sealed record ParameterInfo(string Name, Shape Shape, ParameterKind Kind, long Offset)
{
    /// <summary>Number of elements.</summary>
    public long ElementCount => Shape.ElementCount;
}

/// <summary>
/// All parameters of a model in one contiguous buffer, with gradients and AdamW moments in buffers of the same layout,
/// so AdamW, the global gradient norm and checkpointing are single passes. Matrices come first and everything else
/// (embeddings, norms, biases) after, so the weight-decayed and the undecayed parameters are two contiguous runs.
/// </summary>
public sealed class ParameterSet : IDisposable
{
    private readonly Dictionary<string, ParameterInfo> byName = new(StringComparer.Ordinal);
    private readonly List<ParameterInfo> ordered = [];
    private readonly DeviceBuffer values;
    private readonly DeviceBuffer? gradients;
    private readonly DeviceBuffer? firstMoment;
    private readonly DeviceBuffer? secondMoment;

    /// <summary>
    /// Lays out <paramref name="specs"/> and allocates values (and, when <paramref name="trainable"/>, gradients and both
    /// moments) on <paramref name="backend"/>, all zero.
    /// </summary>
    public ParameterSet(Backend backend, IEnumerable<(string Name, Shape Shape, ParameterKind Kind)> specs, bool trainable)
    {
        Backend = backend;
        var list = specs.ToList();
        long offset = 0;
        foreach (var decayed in new[] { true, false })
        {
            foreach (var (name, shape, kind) in list)
            {
                if ((kind == ParameterKind.Matrix) != decayed)
                {
                    continue;
                }

                var info = new ParameterInfo(name, shape, kind, offset);
                if (!byName.TryAdd(name, info))
                {
                    throw new ArgumentException($"duplicate parameter name '{name}'");
                }

                ordered.Add(info);
                offset += shape.ElementCount;
            }

            if (decayed)
            {
                MatrixElementCount = offset;
            }
        }

        ElementCount = offset;
        long bytes = offset * sizeof(float);
        values = backend.Allocate(bytes);
        if (trainable)
        {
            gradients = backend.Allocate(bytes);
            firstMoment = backend.Allocate(bytes);
            secondMoment = backend.Allocate(bytes);
        }
    }

    /// <summary>The backend holding the buffers.</summary>
    public Backend Backend { get; }

    /// <summary>Total number of parameters.</summary>
    public long ElementCount { get; }

    /// <summary>Number of elements in the leading run of matrices (the weight-decayed run).</summary>
    public long MatrixElementCount { get; }

    /// <summary>Whether gradients and optimizer moments exist.</summary>
    public bool Trainable => gradients is not null;

    /// <summary>Parameters in buffer order.</summary>
    public IReadOnlyList<ParameterInfo> Parameters => ordered;

    /// <summary>Every parameter value as one flat [P] tensor.</summary>
    public Tensor Values => new(values, 0, new Shape(ElementCount), DType.F32);

    /// <summary>Every gradient as one flat [P] tensor.</summary>
    public Tensor Gradients => new(RequireTrainable(gradients), 0, new Shape(ElementCount), DType.F32);

    /// <summary>AdamW first moments, flat [P].</summary>
    public Tensor FirstMoment => new(RequireTrainable(firstMoment), 0, new Shape(ElementCount), DType.F32);

    /// <summary>AdamW second moments, flat [P].</summary>
    public Tensor SecondMoment => new(RequireTrainable(secondMoment), 0, new Shape(ElementCount), DType.F32);

    /// <summary>Looks a parameter up by name.</summary>
    public ParameterInfo Info(string name) =>
        byName.TryGetValue(name, out var info) ? info : throw new KeyNotFoundException($"no parameter named '{name}'");

    /// <summary>Whether a parameter of this name exists.</summary>
    public bool Contains(string name) => byName.ContainsKey(name);

    /// <summary>The value tensor of a parameter.</summary>
    public Tensor Value(string name) => View(values, Info(name));

    /// <summary>The gradient tensor of a parameter.</summary>
    public Tensor Gradient(string name) => View(RequireTrainable(gradients), Info(name));

    /// <inheritdoc/>
    public void Dispose()
    {
        values.Dispose();
        gradients?.Dispose();
        firstMoment?.Dispose();
        secondMoment?.Dispose();
    }

    private static Tensor View(DeviceBuffer buffer, ParameterInfo info) =>
        new(buffer, info.Offset * sizeof(float), info.Shape, DType.F32);

    private static DeviceBuffer RequireTrainable(DeviceBuffer? buffer) =>
        buffer ?? throw new InvalidOperationException("this model was created for inference: it has no gradients or optimizer state");
}
