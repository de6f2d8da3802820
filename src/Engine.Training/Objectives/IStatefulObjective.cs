namespace Engine.Training.Objectives;

/// <summary>
/// An objective that carries state from step to step besides the model (e.g. BCO's running reward baseline): the
/// trainer saves it in every checkpoint's <c>trainer_state.json</c> and gives it back on resume, so a resumed run
/// continues to the same bits.
/// </summary>
public interface IStatefulObjective
{
    /// <summary>The state to checkpoint, as named numbers.</summary>
    IReadOnlyDictionary<string, double> SaveState();

    /// <summary>Restores what <see cref="SaveState"/> returned.</summary>
    void LoadState(IReadOnlyDictionary<string, double> state);
}
