// Engine build script: `dotnet tool restore && dotnet cake --target=<Build|Test|Bench|Pack|Default>`.
//   --configuration=Release|Debug   (default Release)
//   --filter=<expr>                 Test: a `dotnet test --filter` expression (e.g. Category=Parity);
//                                   Bench: a BenchmarkDotNet --filter glob (e.g. *Gemm*)
//   --job=<short|medium|default>    Bench: BenchmarkDotNet job (default short)

var target = Argument("target", "Default");
var configuration = Argument("configuration", "Release");
var filter = Argument("filter", "");
var job = Argument("job", "short");
var solution = "./Engine.sln";
var artifacts = "./artifacts";

Task("Build")
    .Does(() =>
{
    DotNetBuild(solution, new DotNetBuildSettings { Configuration = configuration });
});

Task("Test")
    .IsDependentOn("Build")
    .Does(() =>
{
    var settings = new DotNetTestSettings
    {
        Configuration = configuration,
        NoBuild = true,
        Loggers = { "trx;LogFileName=results.trx" },
        ResultsDirectory = artifacts + "/test-results",
    };
    if (!string.IsNullOrEmpty(filter))
    {
        settings.Filter = filter;
    }
    DotNetTest("./tests/Engine.Tests/Engine.Tests.csproj", settings);
});

Task("Bench")
    .IsDependentOn("Build")
    .Does(() =>
{
    var args = new ProcessArgumentBuilder()
        .Append("--filter").AppendQuoted(string.IsNullOrEmpty(filter) ? "*" : filter)
        .Append("--job").Append(job)
        .Append("--artifacts").AppendQuoted(artifacts + "/benchmarks");
    DotNetRun("./bench/Engine.Benchmarks/Engine.Benchmarks.csproj", args, new DotNetRunSettings
    {
        Configuration = configuration,
        NoBuild = true,
    });
});

Task("Pack")
    .IsDependentOn("Build")
    .Does(() =>
{
    foreach (var project in new[] { "Engine.Core", "Engine.Cuda", "Engine.Models", "Engine.Training", "Engine.Cli" })
    {
        DotNetPack($"./src/{project}/{project}.csproj", new DotNetPackSettings
        {
            Configuration = configuration,
            NoBuild = true,
            OutputDirectory = artifacts + "/packages",
        });
    }
});

Task("Default")
    .IsDependentOn("Test");

RunTarget(target);
