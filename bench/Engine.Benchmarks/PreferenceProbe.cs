using System.Diagnostics;
using System.Globalization;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Training.Objectives.Preference;

namespace Engine.Benchmarks;

/// <summary>
/// Extra memory of the preference family's loss path at GPT-2 head size, without BenchmarkDotNet:
/// <c>dotnet bench/Engine.Benchmarks/bin/Release/net10.0/Engine.Benchmarks.dll preference-probe LOSS[,LOSS…] [threads] [N] [V] [C] [T]</c>
/// (defaults 2, 2048, 50257, 768, 128). One step of the path <see cref="PreferenceObjective"/> and
/// <see cref="KtoObjective"/> run after the trunk: fused token log-probs over the LM head, per-row sums, the
/// <see cref="Backend.PreferenceLoss"/> call of every loss of the list, and the way back into dh and dW (T-token rows,
/// pairs (0,1), (2,3), …; <c>kto</c>: the first half of the rows are examples with alternating labels, the second
/// half their KL rows). Measured on the first step in a fresh process: GC allocation and host buffers beyond the
/// inputs, outputs and gradients; then the steady-state step's allocation.
/// </summary>
internal static class PreferenceProbe
{
    public static void Run(string[] args)
    {
        int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
        string losses = args.Length > 0 ? args[0] : "sigmoid";
        int threads = Arg(1, 2), n = Arg(2, 2048), v = Arg(3, 50257), c = Arg(4, 768), time = Arg(5, 128);
        var options = new PreferenceOptions
        {
            Losses = [.. losses.Split(',').Select(name => new PreferenceLossTerm(PreferenceOptions.Parse(name)))],
        };
        bool kto = options.Losses[0].Type == PreferenceLossType.Kto;
        options.Validate(unpaired: kto);
        using var backend = new CpuBackend(threads);
        using var setup = new LogProbSetup(backend, n, v, c);
        using var path = new LossPath(backend, setup, time, kto);
        Console.WriteLine($"{backend.Description}; N={n} V={v} C={c} T={time}; loss {losses}");

        long gcBefore = GC.GetTotalAllocatedBytes(precise: true);
        long liveBefore = HostBuffer.LiveBytes;
        var first = Stopwatch.StartNew();
        float loss = path.Step(options);
        first.Stop();
        double gcMiB = (GC.GetTotalAllocatedBytes(precise: true) - gcBefore) / 1048576.0;
        double hostMiB = (HostBuffer.PeakBytes - liveBefore) / 1048576.0;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"first step {first.Elapsed.TotalMilliseconds:F0} ms, loss {loss:F4}; extra memory: {gcMiB:F1} MiB GC, {hostMiB:F1} MiB host buffers, "
            + $"{gcMiB + hostMiB:F1} MiB in all; inputs+outputs {(setup.TensorBytes + path.TensorBytes) / 1048576.0:F1} MiB"));
        long gcSteady = GC.GetTotalAllocatedBytes(precise: true);
        path.Step(options);
        Console.WriteLine($"steady-state step allocates {GC.GetTotalAllocatedBytes(precise: true) - gcSteady} bytes");
    }

    /// <summary>The per-row tensors of the loss path (the objective's device scratch, allocated once).</summary>
    private sealed class LossPath : IDisposable
    {
        private readonly CpuBackend backend;
        private readonly LogProbSetup s;
        private readonly List<Tensor> owned = [];
        private readonly Tensor mask, logp, rowStats, sums, policy, reference, lengths, chosen, rejected, grad, tokenGrad;
        private readonly TokenLogProbInputs inputs;
        private readonly int rows;

        public LossPath(CpuBackend backend, LogProbSetup setup, int time, bool kto)
        {
            this.backend = backend;
            s = setup;
            rows = setup.N / time;
            var targets = Make(DType.I32, rows, time);
            var maskData = new float[rows * time];
            var rng = new Random(7);
            var t = targets.AsSpan<int>();
            for (int i = 0; i < rows * time; i++)
            {
                // A 32-token prompt, then the response.
                bool response = i % time >= 32;
                t[i] = response ? rng.Next(setup.V) : -1;
                maskData[i] = response ? 1f : 0f;
            }

            inputs = new TokenLogProbInputs(targets.Reshape((long)rows * time));
            mask = Upload(maskData, rows, time);
            logp = Make(DType.F32, (long)rows * time);
            rowStats = Make(DType.F32, (long)rows * time, 2);
            sums = Make(DType.F32, rows);
            policy = Make(DType.F32, rows);
            reference = Upload([.. Enumerable.Range(0, rows).Select(r => -10.8f * (time - 32) + (0.1f * r))], rows);
            lengths = Upload([.. Enumerable.Repeat((float)(time - 32), rows)], rows);
            int pairs = rows / 2;
            var c = new int[pairs];
            var l = new int[pairs];
            for (int p = 0; p < pairs; p++)
            {
                bool desirable = p % 2 == 0;
                (c[p], l[p]) = kto ? (desirable ? p : -1, desirable ? -1 : p) : (2 * p, (2 * p) + 1);
            }

            chosen = Make(DType.I32, pairs);
            rejected = Make(DType.I32, pairs);
            backend.CopyFromHost<int>(chosen, c);
            backend.CopyFromHost<int>(rejected, l);
            grad = Make(DType.F32, rows);
            tokenGrad = Make(DType.F32, rows, time);
        }

        public long TensorBytes => owned.Sum(t => t.ByteLength);

        public float Step(PreferenceOptions options)
        {
            backend.TokenLogProbsForward(new TokenLogProbOutputs(logp, rowStats), s.Hidden, s.Weight, inputs);
            backend.SequenceSum(sums, logp.Reshape(rows, logp.ElementCount / rows), mask, mean: false);
            backend.Copy(policy, sums);
            backend.Zero(grad);
            float total = 0;
            foreach (var term in options.Losses)
            {
                total += term.Weight * backend.PreferenceLoss(policy, reference, lengths, chosen, rejected, default, grad, options.Kernel(term, 0.1f, 1f)).Loss;
            }

            backend.Zero(tokenGrad);
            backend.SequenceSumBackward(tokenGrad, grad, mask, mean: false);
            backend.TokenLogProbsBackward(s.HiddenGrad, s.WeightGrad, new TokenLogProbGrads(tokenGrad.Reshape(tokenGrad.ElementCount)), s.Hidden, s.Weight, rowStats, inputs);
            return total;
        }

        public void Dispose()
        {
            foreach (var t in owned)
            {
                t.Buffer!.Dispose();
            }
        }

        private Tensor Make(DType dtype, params long[] dims)
        {
            var t = backend.AllocateTensor(dtype, dims);
            owned.Add(t);
            return t;
        }

        private Tensor Upload(float[] data, params long[] dims)
        {
            var t = Make(DType.F32, dims);
            backend.CopyFromHost<float>(t, data);
            return t;
        }
    }
}
