using Engine.Core.Backends;

namespace Engine.Tests.Reference;

/// <summary>
/// Plain scalar definitions of the kernels, in double precision, written for reading rather than speed. The fast
/// backends are tested against these. Forward functions return their outputs; backward functions return the gradient
/// alone (tests add it to whatever the gradient held before). Shapes are row-major as in the kernel contract.
/// </summary>
public static class ScalarKernels
{
    private const double GeluScale = 0.7978845608028654; // √(2/π)

    // ------------------------------------------------------------------ normalisation

    /// <summary>LayerNorm of x (N,C): returns (out, mean, rstd) with biased variance.</summary>
    public static (double[] Out, double[] Mean, double[] Rstd) LayerNorm(float[] x, float[] w, float[]? b, int n, int c, float eps)
    {
        var y = new double[n * c];
        var mean = new double[n];
        var rstd = new double[n];
        for (int row = 0; row < n; row++)
        {
            double m = 0;
            for (int i = 0; i < c; i++)
            {
                m += x[(row * c) + i];
            }

            m /= c;
            double v = 0;
            for (int i = 0; i < c; i++)
            {
                double d = x[(row * c) + i] - m;
                v += d * d;
            }

            v /= c;
            double r = 1.0 / Math.Sqrt(v + eps);
            for (int i = 0; i < c; i++)
            {
                y[(row * c) + i] = ((x[(row * c) + i] - m) * r * w[i]) + (b is null ? 0 : b[i]);
            }

            mean[row] = m;
            rstd[row] = r;
        }

        return (y, mean, rstd);
    }

    /// <summary>LayerNorm backward from the saved mean and rstd: returns (dx, dw, db).</summary>
    public static (double[] Dx, double[] Dw, double[] Db) LayerNormBackward(
        float[] dy, float[] x, float[] w, float[] mean, float[] rstd, int n, int c)
    {
        var dx = new double[n * c];
        var dw = new double[c];
        var db = new double[c];
        for (int row = 0; row < n; row++)
        {
            double meanD = 0, meanDn = 0;
            for (int i = 0; i < c; i++)
            {
                double norm = (x[(row * c) + i] - mean[row]) * rstd[row];
                double dnorm = (double)w[i] * dy[(row * c) + i];
                meanD += dnorm;
                meanDn += dnorm * norm;
            }

            meanD /= c;
            meanDn /= c;
            for (int i = 0; i < c; i++)
            {
                double norm = (x[(row * c) + i] - mean[row]) * rstd[row];
                double g = dy[(row * c) + i];
                dx[(row * c) + i] = ((w[i] * g) - meanD - (norm * meanDn)) * rstd[row];
                dw[i] += g * norm;
                db[i] += g;
            }
        }

        return (dx, dw, db);
    }

    /// <summary>RMSNorm of x (N,C): returns (out, rstd).</summary>
    public static (double[] Out, double[] Rstd) RmsNorm(float[] x, float[] w, int n, int c, float eps)
    {
        var y = new double[n * c];
        var rstd = new double[n];
        for (int row = 0; row < n; row++)
        {
            double ss = 0;
            for (int i = 0; i < c; i++)
            {
                ss += (double)x[(row * c) + i] * x[(row * c) + i];
            }

            double r = 1.0 / Math.Sqrt((ss / c) + eps);
            for (int i = 0; i < c; i++)
            {
                y[(row * c) + i] = x[(row * c) + i] * r * w[i];
            }

            rstd[row] = r;
        }

        return (y, rstd);
    }

    /// <summary>RMSNorm backward from the saved rstd: returns (dx, dw).</summary>
    public static (double[] Dx, double[] Dw) RmsNormBackward(float[] dy, float[] x, float[] w, float[] rstd, int n, int c)
    {
        var dx = new double[n * c];
        var dw = new double[c];
        for (int row = 0; row < n; row++)
        {
            double meanDn = 0;
            for (int i = 0; i < c; i++)
            {
                meanDn += (double)w[i] * dy[(row * c) + i] * x[(row * c) + i] * rstd[row];
            }

            meanDn /= c;
            for (int i = 0; i < c; i++)
            {
                double norm = x[(row * c) + i] * (double)rstd[row];
                double g = dy[(row * c) + i];
                dx[(row * c) + i] = ((w[i] * g) - (norm * meanDn)) * rstd[row];
                dw[i] += g * norm;
            }
        }

        return (dx, dw);
    }

    // ------------------------------------------------------------------ activations

    /// <summary>GELU, tanh approximation: ½x(1 + tanh(√(2/π)(x + 0.044715x³))).</summary>
    public static double[] Gelu(float[] x)
    {
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double v = x[i];
            y[i] = 0.5 * v * (1 + Math.Tanh(GeluScale * (v + (0.044715 * v * v * v))));
        }

        return y;
    }

    /// <summary>GELU backward: gelu'(x)·dy.</summary>
    public static double[] GeluBackward(float[] dy, float[] x)
    {
        var dx = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double v = x[i];
            double u = GeluScale * (v + (0.044715 * v * v * v));
            double t = Math.Tanh(u);
            double du = GeluScale * (1 + (3 * 0.044715 * v * v));
            dx[i] = ((0.5 * (1 + t)) + (0.5 * v * (1 - (t * t)) * du)) * dy[i];
        }

        return dx;
    }

    /// <summary>SwiGLU of inp (N,2F) = [gate | up]: out (N,F) = silu(g)·u.</summary>
    public static double[] SwiGlu(float[] inp, int n, int f)
    {
        var y = new double[n * f];
        for (int row = 0; row < n; row++)
        {
            for (int i = 0; i < f; i++)
            {
                double g = inp[(row * 2 * f) + i], u = inp[(row * 2 * f) + f + i];
                y[(row * f) + i] = g / (1 + Math.Exp(-g)) * u;
            }
        }

        return y;
    }

    /// <summary>SwiGLU backward: returns dinp (N,2F) = [dg | du].</summary>
    public static double[] SwiGluBackward(float[] dy, float[] inp, int n, int f)
    {
        var dx = new double[n * 2 * f];
        for (int row = 0; row < n; row++)
        {
            for (int i = 0; i < f; i++)
            {
                double g = inp[(row * 2 * f) + i], u = inp[(row * 2 * f) + f + i], d = dy[(row * f) + i];
                double sig = 1 / (1 + Math.Exp(-g));
                dx[(row * 2 * f) + i] = d * u * sig * (1 + (g * (1 - sig)));
                dx[(row * 2 * f) + f + i] = d * g * sig;
            }
        }

        return dx;
    }

    /// <summary>Whether element i of a dropout call with (seed, offset) is kept.</summary>
    public static bool DropoutKeeps(float p, ulong seed, ulong offset, int i) => DropoutStream.Uniform(seed, offset + (ulong)i) >= p;

    /// <summary>Inverted dropout: x/(1 − p) where kept, else 0.</summary>
    public static double[] Dropout(float[] x, float p, ulong seed, ulong offset)
    {
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            y[i] = DropoutKeeps(p, seed, offset, i) ? x[i] / (1.0 - p) : 0;
        }

        return y;
    }

    // ------------------------------------------------------------------ embeddings

    /// <summary>out[n,:] = table[tokens[n],:].</summary>
    public static double[] Embedding(int[] tokens, float[] table, int c)
    {
        var y = new double[tokens.Length * c];
        for (int n = 0; n < tokens.Length; n++)
        {
            for (int i = 0; i < c; i++)
            {
                y[(n * c) + i] = table[(tokens[n] * c) + i];
            }
        }

        return y;
    }

    /// <summary>dtable[tokens[n],:] += dy[n,:], returning dtable (V,C).</summary>
    public static double[] EmbeddingBackward(float[] dy, int[] tokens, int vocab, int c)
    {
        var dt = new double[vocab * c];
        for (int n = 0; n < tokens.Length; n++)
        {
            for (int i = 0; i < c; i++)
            {
                dt[(tokens[n] * c) + i] += dy[(n * c) + i];
            }
        }

        return dt;
    }

    /// <summary>x (B,T,C) + wpe[offset + t].</summary>
    public static double[] PositionEmbedding(float[] x, float[] wpe, int b, int t, int c, int offset)
    {
        var y = new double[b * t * c];
        for (int bt = 0; bt < b * t; bt++)
        {
            for (int i = 0; i < c; i++)
            {
                y[(bt * c) + i] = (double)x[(bt * c) + i] + wpe[(((bt % t) + offset) * c) + i];
            }
        }

        return y;
    }

    /// <summary>dwpe[t] = Σ_b dx[b,t], returning dwpe (maxT,C).</summary>
    public static double[] PositionEmbeddingBackward(float[] dx, int b, int t, int c, int maxT)
    {
        var dw = new double[maxT * c];
        for (int bt = 0; bt < b * t; bt++)
        {
            for (int i = 0; i < c; i++)
            {
                dw[((bt % t) * c) + i] += dx[(bt * c) + i];
            }
        }

        return dw;
    }

    // ------------------------------------------------------------------ loss

    /// <summary>Per-row softmax cross-entropy: logsumexp(row) − row[target]; 0 for negative targets.</summary>
    public static double[] CrossEntropy(float[] logits, int[] targets, int v)
    {
        var loss = new double[targets.Length];
        for (int n = 0; n < targets.Length; n++)
        {
            if (targets[n] < 0)
            {
                continue;
            }

            loss[n] = LogSumExp(logits, n * v, v) - logits[(n * v) + targets[n]];
        }

        return loss;
    }

    /// <summary>dlogits = scale·(softmax − onehot), zero rows for negative targets.</summary>
    public static double[] CrossEntropyBackward(float[] logits, int[] targets, int v, float scale)
    {
        var d = new double[logits.Length];
        for (int n = 0; n < targets.Length; n++)
        {
            if (targets[n] < 0)
            {
                continue;
            }

            double lse = LogSumExp(logits, n * v, v);
            for (int i = 0; i < v; i++)
            {
                d[(n * v) + i] = scale * (Math.Exp(logits[(n * v) + i] - lse) - (i == targets[n] ? 1 : 0));
            }
        }

        return d;
    }

    /// <summary>log Σ exp(x[start .. start+count)), max-shifted.</summary>
    public static double LogSumExp(float[] x, int start, int count)
    {
        double max = double.NegativeInfinity;
        for (int i = 0; i < count; i++)
        {
            max = Math.Max(max, x[start + i]);
        }

        double sum = 0;
        for (int i = 0; i < count; i++)
        {
            sum += Math.Exp(x[start + i] - max);
        }

        return max + Math.Log(sum);
    }

    // ------------------------------------------------------------------ optimizer

    /// <summary>
    /// One torch.optim.AdamW step in double, in place: p.mul_(1 − lr·wd); m.lerp_(g, 1 − β₁); v.mul_(β₂).addcmul_(g, g, 1 − β₂);
    /// p.addcdiv_(m, √v/√bc₂ + ε, −lr/bc₁) with g = grad·GradScale.
    /// </summary>
    public static void AdamW(double[] p, float[] grad, double[] m, double[] v, AdamWParameters h)
    {
        double bc1 = 1 - Math.Pow(h.Beta1, h.Step);
        double bc2 = 1 - Math.Pow(h.Beta2, h.Step);
        for (int i = 0; i < p.Length; i++)
        {
            double g = (double)grad[i] * h.GradScale;
            p[i] *= 1 - ((double)h.LearningRate * h.WeightDecay);
            m[i] = (h.Beta1 * m[i]) + ((1 - (double)h.Beta1) * g);
            v[i] = (h.Beta2 * v[i]) + ((1 - (double)h.Beta2) * g * g);
            p[i] -= h.LearningRate / bc1 * m[i] / ((Math.Sqrt(v[i]) / Math.Sqrt(bc2)) + h.Epsilon);
        }
    }

    /// <summary>Σ x² in double.</summary>
    public static double SquaredNorm(float[] x)
    {
        double s = 0;
        foreach (float f in x)
        {
            s += (double)f * f;
        }

        return s;
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>The values rounded to float.</summary>
    public static float[] ToFloat(double[] x) => Array.ConvertAll(x, d => (float)d);

    /// <summary>a[i] + b[i], rounded to float (expected value of a gradient that was prefilled with a).</summary>
    public static float[] Plus(float[] a, double[] b)
    {
        var r = new float[a.Length];
        for (int i = 0; i < a.Length; i++)
        {
            r[i] = (float)(a[i] + b[i]);
        }

        return r;
    }
}
