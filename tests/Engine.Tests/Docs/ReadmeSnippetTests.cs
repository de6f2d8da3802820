using Xunit;

namespace Engine.Tests.Docs;

/// <summary>The snippets change the working directory, so they run alone, after the parallel tests.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class WorkingDirectoryCollection
{
    public const string Name = "working directory";
}

/// <summary>
/// Every fenced C# block of README.md compiles as written and runs, in order, in one fresh directory (a block may use
/// the files an earlier one wrote, as a reader following the README would).
/// </summary>
[Collection(WorkingDirectoryCollection.Name)]
public sealed class ReadmeSnippetTests
{
    [Fact]
    public void Every_csharp_block_of_the_README_compiles_and_runs()
    {
        var snippets = ReadmeSnippets.Extract(Path.Combine(ReadmeSnippets.RepositoryRoot(), "README.md"));
        Assert.True(snippets.Count >= 3, $"expected the README's C# examples, found {snippets.Count} blocks");

        var compiled = snippets.Select(s => (Snippet: s, Result: ReadmeSnippets.Compile(s))).ToList();
        var errors = compiled.SelectMany(c => c.Result.Errors.Select(e => $"{c.Snippet}: {e}")).ToList();
        Assert.True(errors.Count == 0, string.Join('\n', errors));

        string previous = Environment.CurrentDirectory;
        var work = Directory.CreateTempSubdirectory("engine-readme-");
        try
        {
            Environment.CurrentDirectory = work.FullName;
            foreach (var (snippet, result) in compiled)
            {
                var failure = Record.Exception(result.Run!);
                Assert.True(failure is null, $"{snippet} threw {failure}");
            }
        }
        finally
        {
            Environment.CurrentDirectory = previous;
            work.Delete(recursive: true);
        }
    }

    [Fact]
    public void A_block_that_does_not_compile_is_reported_with_its_README_line()
    {
        var broken = new Snippet("README.md", 40, "using System;\n\nint x = undefinedName + 1;");
        var (run, errors) = ReadmeSnippets.Compile(broken);
        Assert.Null(run);
        Assert.Contains(errors, e => e.Contains("README.md(42", StringComparison.Ordinal) && e.Contains("undefinedName", StringComparison.Ordinal));
    }
}
