using Engine.Core.Backends;
using Engine.Models;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Models;

/// <summary>
/// Padding-free packing against the same documents run one by one: rows of several documents (lengths that cross the
/// CPU's 8/16-query and 64-key tiles and the CUDA kernels' 16/32-row tiles, a one-token document, trailing padding) give
/// the loss and every parameter's gradient of the separate runs, on any backend.
/// </summary>
internal static class PackedParity
{
    public const int Time = 72;

    /// <summary>Document lengths per row; the rest of a row is padding (one-token documents without targets).</summary>
    public static readonly int[][] Rows = [[5, 30, 1, 36], [40, 20]];

    public static TransformerConfig Config(string arch) => arch == "gpt2"
        ? TransformerConfig.Gpt2(vocabSize: 48, maxSequenceLength: Time, layers: 2, channels: 32, heads: 2)
        : TransformerConfig.Llama(vocabSize: 48, maxSequenceLength: Time, layers: 2, channels: 32, heads: 4, kvHeads: 2);

    /// <summary>Loss of the packed batch, loss of the separate runs weighted by their targets, and both gradients per parameter.</summary>
    public static (double Packed, double Separate, Dictionary<string, (float[] Packed, float[] Separate)> Gradients) Run(Backend backend, string arch)
    {
        using var model = new Transformer(Config(arch), backend);
        model.InitializeWeights(5);
        int v = model.Config.VocabSize, b = Rows.Length, n = b * Time;
        var tokens = new int[n];
        var targets = new int[n];
        var positions = new int[n];
        Array.Fill(targets, -100);
        var documents = new List<(int[] Tokens, int[] Targets)>();
        int seed = 20;
        for (int row = 0; row < b; row++)
        {
            int at = row * Time;
            foreach (int length in Rows[row])
            {
                var doc = TestData.Tokens(seed++, length, v);
                var docTargets = new int[length];
                for (int i = 0; i < length; i++)
                {
                    docTargets[i] = i + 1 < length ? doc[i + 1] : -100;
                    tokens[at + i] = doc[i];
                    targets[at + i] = docTargets[i];
                    positions[at + i] = i;
                }

                documents.Add((doc, docTargets));
                at += length;
            }
        }

        model.ZeroGradients();
        double packed = model.ForwardBackward(tokens, targets, b, Time, positionIds: positions);
        var packedGradients = Gradients(backend, model);

        int total = targets.Count(t => t >= 0);
        double separate = 0;
        model.ZeroGradients();
        foreach (var (doc, docTargets) in documents)
        {
            int counted = docTargets.Count(t => t >= 0);
            double loss = model.ForwardBackward(doc, docTargets, 1, doc.Length, (float)counted / total);
            separate += loss * counted / total;
        }

        var separateGradients = Gradients(backend, model);
        return (packed, separate, packedGradients.ToDictionary(p => p.Key, p => (p.Value, separateGradients[p.Key])));
    }

    /// <summary>Runs <see cref="Run"/> and asserts the loss and every gradient agree to <paramref name="tolerance"/> (relative).</summary>
    public static void Check(Backend backend, string arch, double tolerance = 1e-5)
    {
        var (packed, separate, gradients) = Run(backend, arch);
        Assert.True(Math.Abs(packed - separate) <= tolerance * Math.Abs(separate), $"packed loss {packed:R}, separate {separate:R}");
        foreach (var (name, (p, s)) in gradients)
        {
            Assert.Contains(s, x => x != 0f);
            Approx.RelativeNorm(s, p, tolerance, name);
        }
    }

    private static Dictionary<string, float[]> Gradients(Backend backend, Transformer model) =>
        model.Parameters.Parameters.ToDictionary(p => p.Name, p => TestData.Download(backend, model.Parameters.Gradient(p.Name)));
}
