namespace Engine.Models.Chat.Jinja;

/// <summary>
/// Bounds on one render of an untrusted template. Templates have no access to files, the network or the process
/// environment (there are no functions for them); these limits stop one that would run unbounded.
/// </summary>
public sealed record JinjaLimits
{
    /// <summary>Most for-loop iterations in one render, all loops together (and the longest <c>range()</c>).</summary>
    public long MaxLoopIterations { get; init; } = 1_000_000;

    /// <summary>Longest output, and longest string or list built on the way, in characters (items).</summary>
    public long MaxOutputChars { get; init; } = 16 << 20;

    /// <summary>Deepest macro recursion, and deepest nesting of expressions and blocks in the template text.</summary>
    public int MaxDepth { get; init; } = 128;
}

/// <summary>A rendered template and where its <c>{% generation %}</c> blocks put their text.</summary>
/// <param name="Text">The output.</param>
/// <param name="GenerationSpans">The character range of each generation block in <paramref name="Text"/>, in order.</param>
public sealed record JinjaRender(string Text, IReadOnlyList<CharSpan> GenerationSpans);

/// <summary>
/// A Jinja chat template (the <c>chat_template</c> of a Hugging Face tokenizer), parsed once and rendered many times
/// with the semantics of <c>@huggingface/jinja</c> (the Jinja of Transformers.js): <c>trim_blocks</c> and
/// <c>lstrip_blocks</c> on, as <c>transformers</c> renders chat templates.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly PreprocessedSource source;
    private readonly List<Node> program;

    private JinjaTemplate(PreprocessedSource source, List<Node> program, string sourceName, JinjaLimits limits)
    {
        this.source = source;
        this.program = program;
        SourceName = sourceName;
        Limits = limits;
    }

    /// <summary>Where the template came from, as error messages name it (a file, or a file and field).</summary>
    public string SourceName { get; }

    /// <summary>The template text as given.</summary>
    public string Source => source.Original;

    /// <summary>The limits every render runs under.</summary>
    public JinjaLimits Limits { get; }

    /// <summary>Whether the template marks the assistant's text with <c>{% generation %}</c> blocks.</summary>
    public bool HasGenerationBlocks => source.Markers.Count > 0;

    /// <summary>Parses <paramref name="text"/>.</summary>
    /// <exception cref="JinjaException">A syntax error, naming <paramref name="sourceName"/>, the line and the column.</exception>
    public static JinjaTemplate Parse(string text, string sourceName = "chat template", JinjaLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(sourceName);
        limits ??= new JinjaLimits();
        var source = new PreprocessedSource(text);
        try
        {
            return new JinjaTemplate(source, JinjaParser.Parse(JinjaLexer.Tokenize(source), limits.MaxDepth), sourceName, limits);
        }
        catch (JinjaError e)
        {
            throw Located(source, sourceName, e);
        }
    }

    /// <summary>
    /// Renders with <paramref name="variables"/> (strings, numbers, booleans, null, lists, dictionaries, <see cref="ChatMessage"/>s
    /// or JSON) beside the globals (<c>namespace</c>, <c>range</c>, <c>raise_exception</c>, <c>strftime_now</c>, <c>true</c>…).
    /// </summary>
    /// <param name="variables">The template's variables, e.g. <c>messages</c>, <c>add_generation_prompt</c>, <c>bos_token</c>.</param>
    /// <param name="now">The local time <c>strftime_now</c> formats (default: now).</param>
    /// <exception cref="JinjaException">The template failed: an error it raised, a type error, or a limit.</exception>
    public JinjaRender Render(IReadOnlyDictionary<string, object?> variables, DateTime? now = null)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var time = now ?? DateTime.Now;
        var globals = new Scope(null);
        JinjaBuiltins.AddGlobals(globals, time, Limits);
        foreach (var (name, value) in variables)
        {
            globals.Set(name, JinjaValue.From(value));
        }

        var interpreter = new JinjaInterpreter(Limits);
        try
        {
            string text = interpreter.Run(program, globals);
            return new JinjaRender(text, interpreter.GenerationSpans);
        }
        catch (JinjaError e)
        {
            throw Located(source, SourceName, e);
        }
        catch (InsufficientExecutionStackException e)
        {
            throw new JinjaException(SourceName, 1, 1, "the template nests too deeply to render", e);
        }
    }

    private static JinjaException Located(PreprocessedSource source, string name, JinjaError e)
    {
        var (line, column) = source.LineColumn(Math.Max(e.Position, 0));
        return new JinjaException(name, line, column, e.Message, e);
    }
}
