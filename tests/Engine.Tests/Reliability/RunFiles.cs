using System.Security.Cryptography;
using System.Text.Json;
using Engine.Tests.Cli;
using Engine.Tests.Training;
using Engine.Training.Checkpoints;
using Xunit;

namespace Engine.Tests.Reliability;

/// <summary>What the run-directory tests share: a tiny SFT run's arguments, and the SHA-256 of every file of a directory.</summary>
internal static class RunFiles
{
    /// <summary>Writes the tiny model and 8 prompt/completion lines under <paramref name="dir"/>.</summary>
    public static void Prepare(TempDirectory dir)
    {
        CliHarness.SaveTinyModel(dir.Sub("model"));
        File.WriteAllLines(dir.Sub("sft.jsonl"), Enumerable.Range(0, 8).Select(i => $$"""{"prompt": "q{{i}} ", "completion": "answer {{i}}"}"""));
    }

    /// <summary><c>engine sft</c> of the tiny model into <paramref name="output"/>: a metrics line every step, a checkpoint every <paramref name="checkpointInterval"/>.</summary>
    public static string[] Sft(TempDirectory dir, string output, int steps, int checkpointInterval) =>
    [
        "sft", "--model", dir.Sub("model"), "--data", dir.Sub("sft.jsonl"), "--out", output, "--set", $"max_steps={steps}", "--set", "batch_size=2",
        "--set", "log_interval=1", "--set", $"checkpoint_interval={checkpointInterval}", "--set", "keep_last=0", "--set", "max_length=32", "--threads", "2",
    ];

    /// <summary>Relative path → SHA-256 of every file under <paramref name="directory"/> except the lock file (whose owner line each run rewrites).</summary>
    public static Dictionary<string, string> Hashes(string directory) =>
        Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(f) != RunDirectoryLock.FileName)
            .ToDictionary(f => Path.GetRelativePath(directory, f), f => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f))));

    /// <summary>The steps of the training lines (those with a loss) of a metrics.jsonl, in order; every line must parse.</summary>
    public static List<int> LossSteps(string metrics) =>
        [.. File.ReadAllLines(metrics)
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(l => l.TryGetProperty("loss", out _))
            .Select(l => l.GetProperty("step").GetInt32())];

    /// <summary>The one backup of <paramref name="file"/> (<c>file.bak-*</c>) in its directory.</summary>
    public static string SingleBackup(string file) =>
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(file)!, Path.GetFileName(file) + ".bak-*"));
}
