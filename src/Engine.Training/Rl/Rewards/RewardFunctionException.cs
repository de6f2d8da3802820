using Engine.Core;

namespace Engine.Training.Rl.Rewards;

/// <summary>A reward function failed or returned something unusable; names the function and the prompt's dataset line.</summary>
public sealed class RewardFunctionException : InputException
{
    /// <summary>A failure of <paramref name="function"/> on the prompt read from <paramref name="file"/>:<paramref name="line"/>.</summary>
    public RewardFunctionException(string function, string file, long line, string detail, Exception? innerException = null)
        : base(file, line, null, $"reward function '{function}': {detail}", innerException)
    {
        Function = function;
    }

    /// <summary>The name of the reward function that failed.</summary>
    public string Function { get; }
}
