using System.Globalization;
using Engine.Cli.Bench;
using Engine.Conformance;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Cuda;
using Engine.Models;

// engine-gpucheck [--tf32] [--skip-bench] [--seed N] [--results FILE] [--emulated]
// --tf32 lets the benchmarks' matrix products use TF32; the conformance suite always runs in plain fp32, since its
// tolerances are fp32's (TF32 GEMMs are off by about 3e-4 relative, seen on an H200 on 2026-12-04).
// engine-gpucheck engine ARGS...   runs the `engine` command itself (engine-gpucheck engine pipeline --quick --device cuda)
// 1. availability, 2. the conformance suite (CUDA vs the CPU backend: every op, then whole models; then the test
// suite's PyTorch fixture checks on the device) and its table,
// 3. micro-benchmarks and their table.
// Each table is printed, and appended to the results file (markdown, for bench/results/), as soon as it is complete, so a
// run cut short still leaves the conformance verdict. --emulated runs on the emulated device (g++ needed) instead of a GPU.
// Exit code: 0 all conformance checks passed, 1 some failed, 2 CUDA is not available.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
if (args is ["engine", .. var engineArgs])
{
    return Engine.Cli.EngineCommand.Run(engineArgs);
}

bool tf32 = args.Contains("--tf32");
bool skipBench = args.Contains("--skip-bench");
bool emulated = args.Contains("--emulated");
int seed = ArgValue(args, "--seed") is string s ? int.Parse(s, CultureInfo.InvariantCulture) : Random.Shared.Next();
string? resultsFile = ArgValue(args, "--results");

var report = CudaAvailability.Probe();
Console.WriteLine($"CUDA: {(report.IsAvailable ? "available" : "NOT available")}: {report.Reason}");
if (!report.IsAvailable && !emulated)
{
    return 2;
}

var summary = new List<(string What, string Value, string Status)>();
using var cuda = Open(new CudaBackendOptions { AllowTf32 = false });
using var cpu = new CpuBackend();
Console.WriteLine($"backend: {cuda.Description}");
Console.WriteLine($"reference: {cpu.Description}");
Console.WriteLine($"conformance seed: {seed}");
if (resultsFile is not null)
{
    File.WriteAllText(
        resultsFile,
        $"# GPU check, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC\n\nbackend: {cuda.Description}\n\nreference: {cpu.Description}\n\n" +
        $"conformance seed: {seed}; command: engine-gpucheck {string.Join(' ', args)}\n");
}

int failed = 0;
foreach (var test in ConformanceSuite.Cases)
{
    RunCase(test, cuda, test.Name);
}

// The log-prob cases again with chunks of 16 rows and 96 vocabulary columns, so every row and vocabulary chunk edge of
// the CUDA head path is crossed (the default chunks hold these small problems whole).
using (var chunked = Open(new CudaBackendOptions { AllowTf32 = false, LogProbRowChunk = 16, LogProbVocabChunk = 96 }))
{
    foreach (string name in new[] { "token_logprobs", "token_logprobs_from_logits" })
    {
        RunCase(ConformanceSuite.Get(name), chunked, name + " (small chunks)");
    }
}

// Whole models, the device against the CPU: loss, every gradient, weights after AdamW steps, packed rows, recomputation,
// LoRA and the KV-cached decode path.
foreach (var (label, run) in ModelParity.Cases(cpu, cuda, seed))
{
    Report(label, run);
}

// The PyTorch fixtures (the test suite's own bodies and tolerances) on the device.
foreach (var (label, body) in FixtureChecks.Cases())
{
    var log = new FixtureChecks.Log();
    try
    {
        body(cuda, log);
        Console.WriteLine($"[{label}] ok");
        summary.Add((label, "matches the PyTorch fixture", "ok"));
    }
    catch (Exception e)
    {
        log.Lines.ForEach(line => Console.WriteLine($"[{label}]   {line}"));
        Console.WriteLine($"[{label}] FAIL {e.GetType().Name}: {e.Message}");
        summary.Add((label, e.Message.ReplaceLineEndings(" ")[..Math.Min(50, e.Message.Length)], "FAIL"));
        failed++;
    }
}

string verdict = failed == 0 ? "conformance: all passed" : $"conformance: {failed} FAILED";
PrintTable("conformance", summary, verdict);
if (!skipBench)
{
    var benchmarks = new List<(string What, string Value, string Status)>();
    using var benchBackend = tf32 ? Open(new CudaBackendOptions { AllowTf32 = true }) : null;
    Console.WriteLine($"benchmarks: {(tf32 ? "TF32 matrix products" : "fp32")}");
    foreach (var row in Benchmarks.Run(benchBackend ?? cuda))
    {
        Console.WriteLine($"[bench] {row.Item1}: {row.Item2}");
        benchmarks.Add(row);
    }

    PrintTable("benchmarks", benchmarks, verdict);
}

return failed == 0 ? 0 : 1;

CudaBackend Open(CudaBackendOptions options) => emulated ? CudaBackend.CreateEmulated(options) : CudaBackend.Create(options);

void PrintTable(string title, List<(string What, string Value, string Status)> rows, string footer)
{
    Console.WriteLine();
    Console.WriteLine($"{"check",-34} {"result",-52} status");
    Console.WriteLine(new string('-', 96));
    foreach (var (what, value, status) in rows)
    {
        Console.WriteLine($"{what,-34} {value,-52} {status}");
    }

    Console.WriteLine(footer);
    if (resultsFile is not null)
    {
        var text = new System.Text.StringBuilder($"\n## {title}\n\n| check | result | status |\n|---|---|---|\n");
        foreach (var (what, value, status) in rows)
        {
            text.Append($"| {what} | {value} | {status} |\n");
        }

        File.AppendAllText(resultsFile, text.Append($"\n{footer}\n").ToString());
    }
}

void RunCase(ConformanceCase test, CudaBackend candidate, string label) => Report(label, () =>
{
    using var pair = new BackendPair(cpu, candidate);
    return test.Run(pair, seed);
});

void Report(string label, Func<IReadOnlyList<ConformanceResult>> run)
{
    IReadOnlyList<ConformanceResult> results;
    try
    {
        results = run();
    }
    catch (Exception e)
    {
        Console.WriteLine($"[{label}] threw {e.GetType().Name}: {e.Message}");
        Console.WriteLine(e.StackTrace);
        summary.Add((label, "exception", "FAIL"));
        failed++;
        return;
    }

    foreach (var r in results)
    {
        Console.WriteLine($"[{label}] {r}");
    }

    int bad = results.Count(r => !r.Passed);
    failed += bad;
    double worst = results.Max(r => r.Tolerance > 0 ? r.RelativeError / r.Tolerance : r.RelativeError);
    summary.Add((label, $"{results.Count} outputs, worst {worst:F3} of tolerance", bad == 0 ? "ok" : $"FAIL ({bad})"));
}

static string? ArgValue(string[] args, string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

/// <summary>GPU micro-benchmarks timed with CUDA events: GEMM GFLOP/s, attention forward/backward, a GPT-2 124M step.</summary>
internal static class Benchmarks
{
    public static IEnumerable<(string, string, string)> Run(CudaBackend cuda)
    {
        foreach (var (m, n, k) in new[] { (4096, 4096, 4096), (8192, 3072, 768), (8192, 768, 3072), (8192, 50304, 768) })
        {
            yield return Gemm(cuda, m, n, k);
        }

        yield return Attention(cuda, 4, 1024, new AttentionShape(12, 12, 64));
        yield return Attention(cuda, 2, 2048, new AttentionShape(14, 2, 64));
        yield return LogProbs(cuda, 2048, 50257, 768);
        yield return TrainStep(cuda);
    }

    private static (string, string, string) Gemm(CudaBackend cuda, int m, int n, int k)
    {
        var a = cuda.AllocateTensor(DType.F32, m, k);
        var b = cuda.AllocateTensor(DType.F32, n, k);
        var c = cuda.AllocateTensor(DType.F32, m, n);
        try
        {
            cuda.Fill(a, 0.01f);
            cuda.Fill(b, 0.02f);
            double ms = Time(cuda, 10, () => cuda.Gemm(c, a, b, transposeA: false, transposeB: true));
            double gflops = 2.0 * m * n * k / (ms * 1e6);
            return ($"gemm {m}x{n}x{k} (A·Bᵀ)", $"{ms:F3} ms, {gflops:F0} GFLOP/s", "bench");
        }
        finally
        {
            a.Buffer!.Dispose();
            b.Buffer!.Dispose();
            c.Buffer!.Dispose();
        }
    }

    private static (string, string, string) Attention(CudaBackend cuda, int batch, int t, AttentionShape shape)
    {
        var qkv = cuda.AllocateTensor(DType.F32, batch, t, shape.QkvChannels);
        var output = cuda.AllocateTensor(DType.F32, batch, t, shape.OutChannels);
        var lse = cuda.AllocateTensor(DType.F32, batch, shape.NumHeads, t);
        var dout = cuda.AllocateTensor(DType.F32, batch, t, shape.OutChannels);
        var dqkv = cuda.AllocateTensor(DType.F32, batch, t, shape.QkvChannels);
        try
        {
            cuda.Fill(qkv, 0.1f);
            cuda.Fill(dout, 0.01f);
            double forward = Time(cuda, 10, () => cuda.AttentionForward(output, lse, qkv, shape));
            double backward = Time(cuda, 10, () => cuda.AttentionBackward(dqkv, dout, qkv, output, lse, shape));

            // Causal: half of the T² score matrix; forward 2 GEMM-like products of 2·HS flops per score, backward 5.
            double scores = (double)batch * shape.NumHeads * t * (t + 1) / 2;
            double fwdTflops = 4.0 * scores * shape.HeadSize / (forward * 1e9);
            double bwdTflops = 10.0 * scores * shape.HeadSize / (backward * 1e9);
            return ($"attention B={batch} T={t} NH={shape.NumHeads} NKV={shape.NumKvHeads} HS={shape.HeadSize}",
                    $"fwd {forward:F2} ms ({fwdTflops:F1} TFLOP/s), bwd {backward:F2} ms ({bwdTflops:F1} TFLOP/s)", "bench");
        }
        finally
        {
            foreach (var tensor in new[] { qkv, output, lse, dout, dqkv })
            {
                tensor.Buffer!.Dispose();
            }
        }
    }

    /// <summary>
    /// The fused token log-prob path through a GPT-2-sized head: forward, backward, and the fused forward-backward, each
    /// beside the time of its GEMMs alone (the logits GEMM h·Wᵀ, and dz·W plus dzᵀ·h), so the row kernels' share shows.
    /// </summary>
    private static (string, string, string) LogProbs(CudaBackend cuda, int n, int v, int c)
    {
        var hidden = cuda.AllocateTensor(DType.F32, n, c);
        var weight = cuda.AllocateTensor(DType.F32, v, c);
        var logits = cuda.AllocateTensor(DType.F32, n, v);
        var dh = cuda.AllocateTensor(DType.F32, n, c);
        var dw = cuda.AllocateTensor(DType.F32, v, c);
        var targets = cuda.AllocateTensor(DType.I32, n);
        var logp = cuda.AllocateTensor(DType.F32, n);
        var rowStats = cuda.AllocateTensor(DType.F32, n, 2);
        var entropy = cuda.AllocateTensor(DType.F32, n);
        var grad = cuda.AllocateTensor(DType.F32, n);
        try
        {
            var rng = new Random(1);
            cuda.CopyFromHost<float>(hidden, [.. Enumerable.Range(0, n * c).Select(_ => (float)(rng.NextDouble() - 0.5))]);
            cuda.CopyFromHost<float>(weight, [.. Enumerable.Range(0, v * c).Select(_ => (float)((rng.NextDouble() - 0.5) * 0.1))]);
            cuda.CopyFromHost<int>(targets, [.. Enumerable.Range(0, n).Select(_ => rng.Next(v))]);
            cuda.Fill(grad, 1f / n);
            var inputs = new TokenLogProbInputs(targets);
            var outputs = new TokenLogProbOutputs(logp, rowStats, entropy);
            var grads = new TokenLogProbGrads(grad);
            double forward = Time(cuda, 5, () => cuda.TokenLogProbsForward(outputs, hidden, weight, inputs));
            double backward = Time(cuda, 5, () => cuda.TokenLogProbsBackward(dh, dw, grads, hidden, weight, rowStats, inputs));
            double fused = Time(cuda, 5, () => cuda.TokenLogProbsForwardBackward(outputs, dh, dw, grads, hidden, weight, inputs));
            double logitsGemm = Time(cuda, 5, () => cuda.Gemm(logits, hidden, weight, transposeA: false, transposeB: true));
            double gradGemms = Time(cuda, 5, () =>
            {
                cuda.Gemm(dh, logits, weight, transposeA: false, transposeB: false, beta: 1f);
                cuda.Gemm(dw, logits, hidden, transposeA: true, transposeB: false, beta: 1f);
            });
            return ($"log-probs N={n} V={v} C={c}",
                    $"fwd {forward:F2} ms, bwd {backward:F2}, fused {fused:F2} (GEMMs: h·Wᵀ {logitsGemm:F2}, dz·W + dzᵀ·h {gradGemms:F2})", "bench");
        }
        finally
        {
            foreach (var tensor in new[] { hidden, weight, logits, dh, dw, targets, logp, rowStats, entropy, grad })
            {
                tensor.Buffer!.Dispose();
            }
        }
    }

    private static (string, string, string) TrainStep(CudaBackend cuda)
    {
        var options = new TrainStepOptions
        {
            Architecture = Architecture.Gpt2, Layers = 12, Channels = 768, Heads = 12, Vocab = 50257, Sequence = 1024, Batch = 4,
            Steps = 10, Warmup = 2,
        };
        var result = TrainStepBenchmark.Run(options, cuda);
        return ("GPT-2 124M train step B=4 T=1024",
                $"{result.MillisecondsPerStep:F1} ms/step, {result.TokensPerSecond:F0} tokens/s, loss {result.Losses[0]:F3}→{result.Losses[^1]:F3}",
                "bench");
    }

    private static double Time(CudaBackend cuda, int repetitions, Action work)
    {
        work();
        cuda.Synchronize();
        using var watch = cuda.CreateStopwatch();
        watch.Start();
        for (int i = 0; i < repetitions; i++)
        {
            work();
        }

        watch.Stop();
        return watch.ElapsedMilliseconds / repetitions;
    }
}
