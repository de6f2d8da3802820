using Engine.Core.Backends;

namespace Engine.Core.Cpu;

/// <summary>One pair's term of <see cref="Backend.PreferenceLoss"/> and its derivatives, in double (kernels/rl.cu mirrors it).</summary>
internal static unsafe class PreferencePair
{
    /// <summary>Whether (c, l) indexes rows of [0, R): both sides for paired losses, exactly one side (the other −1) for KTO.</summary>
    public static bool ValidIndices(int c, int l, int rows, bool kto) => kto
        ? (c == -1 && (uint)l < (uint)rows) || (l == -1 && (uint)c < (uint)rows)
        : (uint)c < (uint)rows && (uint)l < (uint)rows;

    /// <summary>
    /// The pair's sequence log-probs, reference log-probs and lengths (a missing KTO side reads as 0 with length 1).
    /// </summary>
    public static PairInputs Inputs(float* a, float* r, float* n, int c, int l)
    {
        static double Read(float* x, int i) => x is null || i < 0 ? 0.0 : x[i];
        return new PairInputs(Read(a, c), Read(a, l), Read(r, c), Read(r, l), c >= 0 ? n[c] : 1.0, l >= 0 ? n[l] : 1.0, c >= 0);
    }

    /// <summary>AOT: the reference side of the pair is the partner's reference difference.</summary>
    public static PairInputs WithReferenceDifference(PairInputs p, double referenceDifference) => p with { ARef = referenceDifference, BRef = 0 };

    /// <summary>ℓ and ∂ℓ/∂a, ∂ℓ/∂b, with ORPO's logσ(log-odds) and log-odds, finite for every finite input.</summary>
    public static PairTerm Loss(in PreferenceLossOptions o, PairInputs p)
    {
        double beta = o.Beta, eps = o.LabelSmoothing;
        double u = beta * (p.A - p.ARef), v = beta * (p.B - p.BRef);
        switch (o.Type)
        {
            case PreferenceLossType.Sigmoid:
            case PreferenceLossType.Robust:
            case PreferenceLossType.Hinge:
            case PreferenceLossType.Aot:
            {
                var type = o.Type == PreferenceLossType.Aot ? PairwiseLossType.Sigmoid : (PairwiseLossType)o.Type;
                var (loss, grad) = CpuBackend.PairLoss(type, u - v, eps, 0);
                return new PairTerm(loss, beta * grad, -beta * grad);
            }

            case PreferenceLossType.Ipo:
            {
                var (loss, grad) = CpuBackend.PairLoss(PairwiseLossType.Ipo, ((p.A - p.ARef) / p.NA) - ((p.B - p.BRef) / p.NB), 0, 1.0 / (2.0 * beta));
                return new PairTerm(loss, grad / p.NA, -grad / p.NB);
            }

            case PreferenceLossType.Simpo:
            case PreferenceLossType.SigmoidNorm:
            {
                bool simpo = o.Type == PreferenceLossType.Simpo;
                double x = (beta * (((p.A - (simpo ? 0 : p.ARef)) / p.NA) - ((p.B - (simpo ? 0 : p.BRef)) / p.NB))) - (simpo ? o.Gamma : 0);
                var (loss, grad) = CpuBackend.PairLoss(PairwiseLossType.Sigmoid, x, simpo ? eps : 0, 0);
                return new PairTerm(loss, beta * grad / p.NA, -beta * grad / p.NB);
            }

            case PreferenceLossType.Cpo:
            {
                var (loss, grad) = CpuBackend.PairLoss(PairwiseLossType.Sigmoid, beta * (p.A - p.B), eps, 0);
                return new PairTerm(loss, beta * grad, -beta * grad);
            }

            case PreferenceLossType.Orpo:
                return Orpo(beta, p);
            case PreferenceLossType.ApoZero:
                return new PairTerm(1 - Sigmoid(u) + Sigmoid(v), -beta * SigmoidSlope(u), beta * SigmoidSlope(v));
            case PreferenceLossType.ApoDown:
            {
                double sd = SigmoidSlope(u - v);
                return new PairTerm(Sigmoid(u) + 1 - Sigmoid(u - v), beta * (SigmoidSlope(u) - sd), beta * sd);
            }

            case PreferenceLossType.BcoPair:
            {
                double x = u - o.Baseline, y = v - o.Baseline;
                return new PairTerm(Softplus(-x) + Softplus(y), -beta * Sigmoid(-x), beta * Sigmoid(y));
            }

            case PreferenceLossType.NcaPair:
                return new PairTerm(
                    Softplus(-u) + (0.5 * Softplus(u)) + (0.5 * Softplus(v)), beta * (-Sigmoid(-u) + (0.5 * Sigmoid(u))), beta * 0.5 * Sigmoid(v));
            case PreferenceLossType.ExoPair:
            {
                // d/dx = σ'(x)·(logσ(x) − logσ(−x) − log((1−ε)/ε)) = σ'(x)·(x − log((1−ε)/ε)).
                double x = u - v, sp = Sigmoid(x), sn = Sigmoid(-x);
                double loss = (sp * (-Softplus(-x) - Math.Log(1 - eps))) + (sn * (-Softplus(x) - Math.Log(eps)));
                double grad = SigmoidSlope(x) * (x - Math.Log((1 - eps) / eps));
                return new PairTerm(loss, beta * grad, -beta * grad);
            }

            case PreferenceLossType.SppoHard:
            {
                double half = 0.5 / beta, dc = p.A - p.ARef - half, dl = p.B - p.BRef + half;
                return new PairTerm((dc * dc) + (dl * dl), 2 * dc, 2 * dl);
            }

            case PreferenceLossType.Sft:
                return default;
            default:
                return Kto(o, p, u, v);
        }
    }

    private static PairTerm Orpo(double beta, PairInputs p)
    {
        // log-odds = (ā − b̄) − (log(1 − e^ā) − log(1 − e^b̄)) with ā, b̄ the mean token log-probs (< 0);
        // d/dā [ā − log(1 − e^ā)] = 1/(1 − e^ā) = −1/expm1(ā).
        double ma = p.A / p.NA, mb = p.B / p.NB;
        double logOdds = ma - mb - (Log1mExp(ma) - Log1mExp(mb));
        double logRatio = -Softplus(-logOdds), slope = Sigmoid(-logOdds);
        double dA = -beta * slope / -ExpM1(ma), dB = beta * slope / -ExpM1(mb);
        return new PairTerm(-beta * logRatio, dA / p.NA, dB / p.NB, logRatio, logOdds);
    }

    private static PairTerm Kto(in PreferenceLossOptions o, PairInputs p, double u, double v)
    {
        double z = o.Beta * o.Baseline;
        if (p.HasChosen)
        {
            return new PairTerm(o.DesirableWeight * (1 - Sigmoid(u - z)), -o.DesirableWeight * o.Beta * SigmoidSlope(u - z), 0);
        }

        return new PairTerm(o.UndesirableWeight * (1 - Sigmoid(z - v)), 0, o.UndesirableWeight * o.Beta * SigmoidSlope(z - v));
    }

    private static double Sigmoid(double x) => x >= 0 ? 1.0 / (1.0 + Math.Exp(-x)) : Math.Exp(x) / (1.0 + Math.Exp(x));

    private static double SigmoidSlope(double x) => Sigmoid(x) * Sigmoid(-x);

    private static double Softplus(double x) => Math.Max(x, 0) + Math.Log(1.0 + Math.Exp(-Math.Abs(x)));

    private static double ExpM1(double x) => Math.Abs(x) < 1e-5 ? x + (0.5 * x * x) : Math.Exp(x) - 1.0;

    private static double Log1mExp(double x) => x > -0.6931471805599453 ? Math.Log(-ExpM1(x)) : Math.Log(1.0 - Math.Exp(x));
}

/// <summary>A pair's sequence log-probs (a, b), the reference's, the response lengths, and whether it has a chosen side (KTO).</summary>
internal readonly record struct PairInputs(double A, double B, double ARef, double BRef, double NA, double NB, bool HasChosen);

/// <summary>A pair's ℓ, ∂ℓ/∂a, ∂ℓ/∂b, and ORPO's logσ(log-odds) and log-odds.</summary>
internal readonly record struct PairTerm(double Loss, double GradA, double GradB, double LogOddsRatio = 0, double LogOdds = 0);
