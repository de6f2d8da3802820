using Engine.Core.Numerics;

namespace Engine.Models.Generation;

/// <summary>
/// Picks one token from a row of logits by the rules of <see cref="GenerationOptions"/>. Scratch is sized to the
/// vocabulary once, so sampling allocates nothing per token. Not thread-safe.
/// </summary>
public sealed class Sampler
{
    private const int InsertionTopK = 256;
    private readonly GenerationOptions options;
    private readonly float[] scaled;
    private readonly double[] weights;
    private readonly int[] order;
    private readonly Comparison<int> descending;

    /// <summary>A sampler for rows of <paramref name="vocabSize"/> logits.</summary>
    public Sampler(GenerationOptions options, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabSize);
        this.options = options;
        scaled = new float[vocabSize];
        weights = new double[vocabSize];
        order = new int[vocabSize];

        // Most likely first, lower id first among equals: a total order, so the kept set never depends on the sort.
        descending = (a, b) => scaled[a] != scaled[b] ? scaled[b].CompareTo(scaled[a]) : a.CompareTo(b);
    }

    /// <summary>True when the options make every pick the argmax.</summary>
    public bool IsGreedy => options.Temperature == 0f || options.TopK == 1;

    /// <summary>The index of the largest logit, the lowest on ties (NaN never wins).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best] || float.IsNaN(logits[best]))
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>Picks a token from <paramref name="logits"/>, drawing from <paramref name="random"/> unless greedy.</summary>
    public int Sample(ReadOnlySpan<float> logits, RandomStream random)
    {
        ArgumentNullException.ThrowIfNull(random);
        int v = scaled.Length;
        if (logits.Length != v)
        {
            throw new ArgumentException($"expected {v} logits, got {logits.Length}", nameof(logits));
        }

        if (IsGreedy)
        {
            return ArgMax(logits);
        }

        float inv = 1f / options.Temperature;
        for (int i = 0; i < v; i++)
        {
            scaled[i] = logits[i] * inv;
        }

        // Candidates in order[0..n): sorted most likely first whenever a cut needs the order.
        int n = v;
        bool cutK = options.TopK > 0 && options.TopK < v;
        if (cutK && options.TopK <= InsertionTopK)
        {
            n = TopKByInsertion(options.TopK);
        }
        else
        {
            for (int i = 0; i < v; i++)
            {
                order[i] = i;
            }

            if (cutK || options.TopP < 1f)
            {
                Array.Sort(order, descending);
                n = cutK ? options.TopK : v;
            }
        }

        float max = float.NegativeInfinity;
        for (int i = 0; i < n; i++)
        {
            max = MathF.Max(max, scaled[order[i]]);
        }

        double sum = 0;
        for (int i = 0; i < n; i++)
        {
            double w = Math.Exp(scaled[order[i]] - max);
            weights[i] = w;
            sum += w;
        }

        if (options.TopP < 1f)
        {
            // Smallest most-likely-first prefix whose probability reaches P (at least one token).
            double target = options.TopP * sum, kept = 0;
            int m = 0;
            while (m < n)
            {
                kept += weights[m++];
                if (kept >= target)
                {
                    break;
                }
            }

            n = m;
            sum = kept;
        }

        double u = random.NextDouble() * sum, acc = 0;
        for (int i = 0; i < n; i++)
        {
            acc += weights[i];
            if (u < acc)
            {
                return order[i];
            }
        }

        return order[n - 1];
    }

    // The k largest of scaled[] into order[0..k), sorted by the total order above; returns k.
    private int TopKByInsertion(int k)
    {
        int count = 0;
        for (int i = 0; i < scaled.Length; i++)
        {
            if (count == k && descending(i, order[k - 1]) >= 0)
            {
                continue;
            }

            int j = count < k ? count++ : k - 1;
            while (j > 0 && descending(i, order[j - 1]) < 0)
            {
                order[j] = order[j - 1];
                j--;
            }

            order[j] = i;
        }

        return count;
    }
}
