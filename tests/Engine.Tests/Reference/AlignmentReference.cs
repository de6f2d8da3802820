namespace Engine.Tests.Reference;

/// <summary>
/// Plain double-precision definitions of the alignment kernels, written for reading: the full logits are materialised,
/// softmax is taken the textbook way, and gradients come from the closed forms. Row n is active when targets[n] ≥ 0 and
/// mask[n] ≠ 0; its outputs and gradients are multiplied by mask[n], inactive rows are zero.
/// </summary>
public static class AlignmentReference
{
    /// <summary>Per-row outputs: masked logp [N], entropy [N], KL estimators [N,3], and unmasked (lse, H) [N,2].</summary>
    public sealed record Outputs(double[] LogProbs, double[] Entropy, double[] Kl, double[] RowStats);

    /// <summary>logits[n,v] = Σ_c h[n,c]·W[v,c] (not yet divided by the temperature).</summary>
    public static double[] HeadLogits(float[] hidden, float[] weight, int n, int c, int v)
    {
        var logits = new double[n * v];
        for (int row = 0; row < n; row++)
        {
            for (int j = 0; j < v; j++)
            {
                double dot = 0;
                for (int i = 0; i < c; i++)
                {
                    dot += (double)hidden[(row * c) + i] * weight[(j * c) + i];
                }

                logits[(row * v) + j] = dot;
            }
        }

        return logits;
    }

    /// <summary>Forward from logits [N,V] with z = logits/τ.</summary>
    public static Outputs Forward(double[] logits, int[] targets, float[]? mask, float[]? reference, int n, int v, double temperature)
    {
        var logp = new double[n];
        var entropy = new double[n];
        var kl = new double[n * 3];
        var stats = new double[n * 2];
        for (int row = 0; row < n; row++)
        {
            if (!Active(targets, mask, row))
            {
                continue;
            }

            double m = mask?[row] ?? 1.0;
            var (z, p, lse) = Softmax(logits, row, v, temperature);
            double pz = 0;
            for (int j = 0; j < v; j++)
            {
                pz += p[j] * z[j];
            }

            double h = lse - pz;
            double lp = z[targets[row]] - lse;
            stats[2 * row] = lse;
            stats[(2 * row) + 1] = h;
            logp[row] = m * lp;
            entropy[row] = m * h;
            if (reference is not null)
            {
                double d = lp - reference[row];
                kl[3 * row] = m * d;
                kl[(3 * row) + 1] = m * 0.5 * d * d;
                kl[(3 * row) + 2] = m * (Math.Exp(-d) + d - 1.0);
            }
        }

        return new Outputs(logp, entropy, kl, stats);
    }

    /// <summary>
    /// ∂L/∂logits [N,V] for L = Σ_n gLogp[n]·logp[n] + gEntropy[n]·H[n] + Σ_j gKl[n,j]·k_j[n] over the masked outputs:
    /// per active row, with g = gLogp + gKl·(1, logp − r, 1 − e^(r − logp)),
    /// dL/dz = m·(g·(onehot(y) − p) − gH·p∘(z − Σp·z)), and dL/dlogits = dL/dz / τ.
    /// </summary>
    public static double[] LogitsGrad(
        double[] logits, int[] targets, float[]? mask, float[]? reference, float[]? gLogp, float[]? gEntropy, float[]? gKl, int n, int v, double temperature)
    {
        var grad = new double[n * v];
        for (int row = 0; row < n; row++)
        {
            if (!Active(targets, mask, row))
            {
                continue;
            }

            double m = mask?[row] ?? 1.0;
            var (z, p, lse) = Softmax(logits, row, v, temperature);
            double pz = 0;
            for (int j = 0; j < v; j++)
            {
                pz += p[j] * z[j];
            }

            double lp = z[targets[row]] - lse;
            double g = gLogp?[row] ?? 0;
            if (gKl is not null)
            {
                double d = lp - reference![row];
                g += gKl[3 * row] + (gKl[(3 * row) + 1] * d) + (gKl[(3 * row) + 2] * (1.0 - Math.Exp(-d)));
            }

            double gh = gEntropy?[row] ?? 0;
            for (int j = 0; j < v; j++)
            {
                double onehot = j == targets[row] ? 1.0 : 0.0;
                double dz = (g * (onehot - p[j])) - (gh * p[j] * (z[j] - pz));
                grad[(row * v) + j] = m * dz / temperature;
            }
        }

        return grad;
    }

    /// <summary>Chain through the head: dh = dlogits·W [N,C], dW = dlogitsᵀ·h [V,C].</summary>
    public static (double[] HiddenGrad, double[] WeightGrad) HeadGrad(double[] logitsGrad, float[] hidden, float[] weight, int n, int c, int v)
    {
        var dh = new double[n * c];
        var dw = new double[v * c];
        for (int row = 0; row < n; row++)
        {
            for (int j = 0; j < v; j++)
            {
                double g = logitsGrad[(row * v) + j];
                for (int i = 0; i < c; i++)
                {
                    dh[(row * c) + i] += g * weight[(j * c) + i];
                    dw[(j * c) + i] += g * hidden[(row * c) + i];
                }
            }
        }

        return (dh, dw);
    }

    /// <summary>out[b] = Σ_t m[b,t]·v[b,t], or ÷ Σ_t m[b,t] for the mean (0 when the sequence is fully masked).</summary>
    public static double[] SequenceSum(float[] values, float[]? mask, int b, int t, bool mean)
    {
        var output = new double[b];
        for (int s = 0; s < b; s++)
        {
            double sum = 0, count = 0;
            for (int i = 0; i < t; i++)
            {
                double m = mask?[(s * t) + i] ?? 1.0;
                sum += m * values[(s * t) + i];
                count += m;
            }

            output[s] = !mean ? sum : count == 0 ? 0 : sum / count;
        }

        return output;
    }

    /// <summary>d out / d v: g[b]·m[b,t] (÷ Σ_t m[b,t] for the mean, 0 for a fully masked sequence).</summary>
    public static double[] SequenceSumBackward(float[] outputGrad, float[]? mask, int b, int t, bool mean)
    {
        var grad = new double[b * t];
        for (int s = 0; s < b; s++)
        {
            double count = 0;
            for (int i = 0; i < t; i++)
            {
                count += mask?[(s * t) + i] ?? 1.0;
            }

            for (int i = 0; i < t; i++)
            {
                double m = mask?[(s * t) + i] ?? 1.0;
                grad[(s * t) + i] = !mean ? outputGrad[s] * m : count == 0 ? 0 : outputGrad[s] * m / count;
            }
        }

        return grad;
    }

    private static bool Active(int[] targets, float[]? mask, int row) => targets[row] >= 0 && (mask is null || mask[row] != 0f);

    /// <summary>z = logits[row]/τ, p = softmax(z) and logsumexp(z), with the maximum subtracted first.</summary>
    private static (double[] Z, double[] P, double Lse) Softmax(double[] logits, int row, int v, double temperature)
    {
        var z = new double[v];
        double max = double.NegativeInfinity;
        for (int j = 0; j < v; j++)
        {
            z[j] = logits[(row * v) + j] / temperature;
            max = Math.Max(max, z[j]);
        }

        double sum = 0;
        for (int j = 0; j < v; j++)
        {
            sum += Math.Exp(z[j] - max);
        }

        double lse = max + Math.Log(sum);
        var p = new double[v];
        for (int j = 0; j < v; j++)
        {
            p[j] = Math.Exp(z[j] - lse);
        }

        return (z, p, lse);
    }
}
