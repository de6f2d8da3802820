using System.Reflection;
using System.Runtime.Loader;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Engine.Tests.Docs;

/// <summary>One fenced <c>csharp</c> block of a Markdown file: where it starts and its text.</summary>
internal sealed record Snippet(string File, int Line, string Code)
{
    public override string ToString() => $"{Path.GetFileName(File)}:{Line}";
}

/// <summary>
/// Finds the fenced C# blocks of the repository's Markdown files, compiles each as the body of a method (its leading
/// <c>using</c> lines become the file's usings) against the Engine assemblies this test run loaded, and runs it.
/// </summary>
internal static partial class ReadmeSnippets
{
    /// <summary>What an SDK project with <c>ImplicitUsings</c> (the <c>dotnet new console</c> default) gives every file.</summary>
    private const string ImplicitUsings =
        "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; "
        + "global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;";

    /// <summary>The repository root: the first directory above the test binaries holding Engine.sln.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Engine.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"Engine.sln not found above {AppContext.BaseDirectory}");
    }

    /// <summary>The fenced <c>csharp</c> blocks of <paramref name="markdownFile"/>, in order.</summary>
    public static List<Snippet> Extract(string markdownFile)
    {
        var snippets = new List<Snippet>();
        string[] lines = File.ReadAllLines(markdownFile);
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Trim() != "```csharp")
            {
                continue;
            }

            int start = i + 1;
            int end = start;
            while (end < lines.Length && lines[end].Trim() != "```")
            {
                end++;
            }

            snippets.Add(new Snippet(markdownFile, start + 1, string.Join('\n', lines[start..end])));
            i = end;
        }

        return snippets;
    }

    /// <summary>
    /// Compiles <paramref name="snippet"/> and returns its entry point, or the compiler's errors (with README line
    /// numbers) when it does not compile.
    /// </summary>
    public static (Action? Run, IReadOnlyList<string> Errors) Compile(Snippet snippet)
    {
        var (usings, body, bodyLine) = Split(snippet);
        string source = $"{ImplicitUsings}\n{usings}\npublic static class Snippet {{ public static void Run() {{\n#line {bodyLine} \"{Path.GetFileName(snippet.File)}\"\n{body}\n}} }}\n";
        var tree = CSharpSyntaxTree.ParseText(source, new CSharpParseOptions(LanguageVersion.Latest));
        var compilation = CSharpCompilation.Create(
            $"Snippet_{snippet.Line}_{Guid.NewGuid():N}",
            [tree],
            References(),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
        using var image = new MemoryStream();
        var emit = compilation.Emit(image);
        if (!emit.Success)
        {
            return (null, emit.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString()).ToList());
        }

        var assembly = AssemblyLoadContext.Default.LoadFromStream(new MemoryStream(image.ToArray()));
        var run = assembly.GetType("Snippet")!.GetMethod("Run", BindingFlags.Public | BindingFlags.Static)!;
        return (() => Invoke(run), []);
    }

    private static void Invoke(MethodInfo run)
    {
        try
        {
            run.Invoke(null, null);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
        }
    }

    /// <summary>The leading <c>using</c> lines (and blank lines between them), the rest, and the README line where the rest starts.</summary>
    private static (string Usings, string Body, int BodyLine) Split(Snippet snippet)
    {
        string[] lines = snippet.Code.Split('\n');
        int first = 0;
        while (first < lines.Length && (lines[first].Trim().Length == 0 || UsingDirective().IsMatch(lines[first])))
        {
            first++;
        }

        return (string.Join('\n', lines[..first]), string.Join('\n', lines[first..]), snippet.Line + first);
    }

    private static List<MetadataReference> References()
    {
        string platform = (string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!;
        var paths = platform.Split(Path.PathSeparator).ToHashSet(StringComparer.Ordinal);
        foreach (string engine in Directory.EnumerateFiles(AppContext.BaseDirectory, "Engine.*.dll"))
        {
            paths.Add(engine);
        }

        return paths.Where(File.Exists).Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToList();
    }

    [GeneratedRegex(@"^\s*using\s+[\w.]+\s*;\s*$")]
    private static partial Regex UsingDirective();
}
