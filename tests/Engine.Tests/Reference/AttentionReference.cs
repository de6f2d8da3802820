using Engine.Core.Backends;

namespace Engine.Tests.Reference;

/// <summary>
/// Plain scalar attention and RoPE in double precision: the full masked [T,T] softmax, written for reading, not speed.
/// Layouts follow the kernel contract: qkv [B,T,(NH+2·NKV)·HS] as [q heads | k heads | v heads], out [B,T,NH·HS],
/// lse [B,NH,T].
/// </summary>
public static class AttentionReference
{
    /// <summary>Causal attention forward: returns (out, lse).</summary>
    public static (float[] Out, float[] Lse) Forward(float[] qkv, int b, int t, AttentionShape shape)
    {
        var layout = new Layout(b, t, shape);
        var output = new float[b * t * shape.OutChannels];
        var lse = new float[b * shape.NumHeads * t];
        for (int bi = 0; bi < b; bi++)
        {
            for (int h = 0; h < shape.NumHeads; h++)
            {
                double[,] p = Probabilities(qkv, layout, bi, h, out double[] rowLse);
                int g = layout.KvHeadOf(h);
                for (int ti = 0; ti < t; ti++)
                {
                    lse[((bi * shape.NumHeads) + h) * t + ti] = (float)rowLse[ti];
                    for (int c = 0; c < shape.HeadSize; c++)
                    {
                        double sum = 0;
                        for (int s = 0; s <= ti; s++)
                        {
                            sum += p[ti, s] * qkv[layout.V(bi, s, g) + c];
                        }

                        output[layout.Out(bi, ti, h) + c] = (float)sum;
                    }
                }
            }
        }

        return (output, lse);
    }

    /// <summary>Causal attention backward: returns dqkv (a fresh array) for the upstream gradient dout.</summary>
    public static float[] Backward(float[] outputGrad, float[] qkv, int b, int t, AttentionShape shape)
    {
        var layout = new Layout(b, t, shape);
        int hs = shape.HeadSize;
        double scale = 1.0 / Math.Sqrt(hs);
        var grad = new double[qkv.Length];
        for (int bi = 0; bi < b; bi++)
        {
            for (int h = 0; h < shape.NumHeads; h++)
            {
                double[,] p = Probabilities(qkv, layout, bi, h, out _);
                int g = layout.KvHeadOf(h);
                for (int ti = 0; ti < t; ti++)
                {
                    int dout = layout.Out(bi, ti, h);

                    // dP[s] = dout_t · v_s; the softmax Jacobian gives dS = p ∘ (dP − Σ p·dP).
                    var dp = new double[ti + 1];
                    double weighted = 0;
                    for (int s = 0; s <= ti; s++)
                    {
                        for (int c = 0; c < hs; c++)
                        {
                            dp[s] += outputGrad[dout + c] * (double)qkv[layout.V(bi, s, g) + c];
                        }

                        weighted += p[ti, s] * dp[s];
                    }

                    for (int s = 0; s <= ti; s++)
                    {
                        double ds = p[ti, s] * (dp[s] - weighted) * scale;
                        for (int c = 0; c < hs; c++)
                        {
                            grad[layout.Q(bi, ti, h) + c] += ds * qkv[layout.K(bi, s, g) + c];
                            grad[layout.K(bi, s, g) + c] += ds * qkv[layout.Q(bi, ti, h) + c];
                            grad[layout.V(bi, s, g) + c] += p[ti, s] * outputGrad[dout + c];
                        }
                    }
                }
            }
        }

        return Array.ConvertAll(grad, x => (float)x);
    }

    /// <summary>RoPE applied in place to the q and k heads of qkv; <paramref name="inverse"/> rotates by −θ.</summary>
    public static void Rope(float[] qkv, float[] table, int b, int t, AttentionShape shape, int positionOffset, bool inverse = false)
    {
        int hs = shape.HeadSize, half = hs / 2;
        for (int bi = 0; bi < b; bi++)
        {
            for (int ti = 0; ti < t; ti++)
            {
                int row = ((bi * t) + ti) * shape.QkvChannels;
                int pos = (positionOffset + ti) * hs;
                for (int h = 0; h < shape.NumHeads + shape.NumKvHeads; h++)
                {
                    int head = row + (h * hs);
                    for (int i = 0; i < half; i++)
                    {
                        double cos = table[pos + i], sin = inverse ? -table[pos + half + i] : table[pos + half + i];
                        double x1 = qkv[head + i], x2 = qkv[head + half + i];
                        qkv[head + i] = (float)((x1 * cos) - (x2 * sin));
                        qkv[head + half + i] = (float)((x2 * cos) + (x1 * sin));
                    }
                }
            }
        }
    }

    /// <summary>The masked softmax of head h of batch row b: p[t,s] for s ≤ t (zero above the diagonal), and lse per row.</summary>
    private static double[,] Probabilities(float[] qkv, Layout layout, int b, int h, out double[] lse)
    {
        int t = layout.T, hs = layout.Shape.HeadSize, g = layout.KvHeadOf(h);
        double scale = 1.0 / Math.Sqrt(hs);
        var p = new double[t, t];
        lse = new double[t];
        for (int ti = 0; ti < t; ti++)
        {
            double max = double.NegativeInfinity;
            for (int s = 0; s <= ti; s++)
            {
                double dot = 0;
                for (int c = 0; c < hs; c++)
                {
                    dot += (double)qkv[layout.Q(b, ti, h) + c] * qkv[layout.K(b, s, g) + c];
                }

                p[ti, s] = dot * scale;
                max = Math.Max(max, p[ti, s]);
            }

            double sum = 0;
            for (int s = 0; s <= ti; s++)
            {
                p[ti, s] = Math.Exp(p[ti, s] - max);
                sum += p[ti, s];
            }

            for (int s = 0; s <= ti; s++)
            {
                p[ti, s] /= sum;
            }

            lse[ti] = max + Math.Log(sum);
        }

        return p;
    }

    /// <summary>Offsets of the head vectors in the flat qkv and out arrays.</summary>
    private readonly record struct Layout(int B, int T, AttentionShape Shape)
    {
        public int KvHeadOf(int h) => h / (Shape.NumHeads / Shape.NumKvHeads);

        public int Q(int b, int t, int h) => (((b * T) + t) * Shape.QkvChannels) + (h * Shape.HeadSize);

        public int K(int b, int t, int g) => (((b * T) + t) * Shape.QkvChannels) + ((Shape.NumHeads + g) * Shape.HeadSize);

        public int V(int b, int t, int g) =>
            (((b * T) + t) * Shape.QkvChannels) + ((Shape.NumHeads + Shape.NumKvHeads + g) * Shape.HeadSize);

        public int Out(int b, int t, int h) => (((b * T) + t) * Shape.OutChannels) + (h * Shape.HeadSize);
    }
}
