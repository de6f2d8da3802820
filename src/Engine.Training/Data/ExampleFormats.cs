namespace Engine.Training.Data;

/// <summary>The names users know dataset lines by: their fields, as they appear in the JSONL.</summary>
public static class ExampleFormats
{
    /// <summary>The fields that made <paramref name="example"/> what it is, e.g. <c>messages</c> or <c>prompt/chosen/rejected</c>.</summary>
    public static string Fields(Example example)
    {
        ArgumentNullException.ThrowIfNull(example);
        return example switch
        {
            TextExample => "text",
            PromptCompletionExample => "prompt/completion",
            AlpacaExample => "instruction/input/output",
            MessagesExample => "messages",
            PreferenceExample => "prompt/chosen/rejected",
            RankingExample => "prompt/responses/ranking",
            PromptExample => "prompt",
            UnpairedPreferenceExample => "prompt/completion/label",
            _ => example.GetType().Name,
        };
    }
}
