namespace Engine.Training.Rl.Ppo;

/// <summary>
/// The KL coefficient β of the PPO reward, fixed or adaptive (Ziegler et al. 2019, as TRL's AdaptiveKLController):
/// after each rollout, e = clip(KL/target − 1, −0.2, 0.2) and β ← β·(1 + e·n/horizon), with KL the rollout's mean
/// per-sequence KL and n its number of sequences. Its only state is β, saved with each checkpoint.
/// </summary>
public sealed class KlController
{
    /// <summary>A controller starting at <paramref name="value"/>; adaptive when <paramref name="target"/> is given.</summary>
    public KlController(double value, double? target = null, double horizon = 10000)
    {
        if (!(value >= 0 && double.IsFinite(value)))
        {
            throw new ArgumentOutOfRangeException(nameof(value), $"β must be finite and ≥ 0, got {value}");
        }

        if (target is double t && (!(t > 0 && double.IsFinite(t)) || !(horizon > 0 && double.IsFinite(horizon))))
        {
            throw new ArgumentOutOfRangeException(nameof(target), $"the adaptive controller needs a positive target and horizon, got {t} and {horizon}");
        }

        Value = value;
        Target = target;
        Horizon = horizon;
    }

    /// <summary>The current β.</summary>
    public double Value { get; set; }

    /// <summary>The target mean per-sequence KL (null: β is fixed).</summary>
    public double? Target { get; }

    /// <summary>Sequences over which β may change by a factor of up to e^(±0.2).</summary>
    public double Horizon { get; }

    /// <summary>The controller <paramref name="options"/> describe.</summary>
    public static KlController From(PpoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new KlController(options.KlCoef, options.AdaptiveKl ? options.KlTarget : null, options.KlHorizon);
    }

    /// <summary>Moves β after a rollout of <paramref name="sequences"/> with mean per-sequence KL <paramref name="kl"/> (a fixed β stays).</summary>
    public void Update(double kl, int sequences)
    {
        if (Target is not double target || !double.IsFinite(kl))
        {
            return;
        }

        double error = Math.Clamp((kl / target) - 1, -0.2, 0.2);
        Value *= 1 + (error * sequences / Horizon);
    }
}
