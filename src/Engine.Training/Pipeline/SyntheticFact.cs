namespace Engine.Training.Pipeline;

/// <summary>The relations of the synthetic world; each is one sentence template.</summary>
public enum FactKind
{
    /// <summary>"the capital of {country} is {city}".</summary>
    Capital,
    /// <summary>"the {animal} says {sound}".</summary>
    Sound,
    /// <summary>"the colour of the {animal} is {colour}".</summary>
    Colour,
    /// <summary>"{a} plus {b} is {a + b}".</summary>
    Sum,
}

/// <summary>
/// One fact of the synthetic world: a sentence prefix whose one-word continuation is the answer
/// ("The capital of Aldora is" → "Veyn").
/// </summary>
/// <param name="Id">Index in <see cref="SyntheticTask.Facts"/>.</param>
/// <param name="Kind">The relation.</param>
/// <param name="Subject">What the fact is about (a country, an animal, "3 plus 4").</param>
/// <param name="Clause">The prefix as it runs on inside a list, lower-case, no trailing space ("the capital of Aldora is").</param>
/// <param name="Answer">The single-word answer ("Veyn", "7").</param>
public sealed record SyntheticFact(int Id, FactKind Kind, string Subject, string Clause, string Answer)
{
    /// <summary>The prefix as a prompt: the clause with a capital first letter, no trailing space ("The capital of Aldora is").</summary>
    public string Prompt => Capitalize(Clause);

    /// <summary>The full statement, capitalised or not, without final punctuation ("the capital of Aldora is Veyn").</summary>
    public string Statement(bool capitalize) => (capitalize ? Prompt : Clause) + " " + Answer;

    internal static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];
}
