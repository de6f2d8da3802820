using System.Numerics.Tensors;
using Engine.Core.Cpu.Simd;
using Engine.Core.Tensors;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void CrossEntropyForwardCore(Tensor losses, Tensor logits, Tensor targets) =>
        CrossEntropy(losses, logits, targets, backward: false, gradScale: 0f);

    /// <inheritdoc/>
    protected override void CrossEntropyForwardBackwardCore(Tensor losses, Tensor logits, Tensor targets, float gradScale) =>
        CrossEntropy(losses, logits, targets, backward: true, gradScale);

    private void CrossEntropy(Tensor losses, Tensor logits, Tensor targets, bool backward, float gradScale)
    {
        var s = new LossState
        {
            Losses = losses.Pointer<float>(), Logits = logits.Pointer<float>(), Targets = targets.Pointer<int>(),
            Rows = logits.Shape.Rows, V = checked((int)logits.Shape.Last), Backward = backward, GradScale = gradScale,
        };

        // Checked before any row is touched, so a bad target leaves the logits as they were.
        for (long n = 0; n < s.Rows; n++)
        {
            if (s.Targets[n] >= s.V)
            {
                throw new ArgumentOutOfRangeException(
                    nameof(targets), s.Targets[n], $"target {s.Targets[n]} of row {n} is outside the vocabulary [0, {s.V})");
            }
        }

        s.RowsPerItem = RowChunks.PerItem(s.V);
        int items = checked((int)((s.Rows + s.RowsPerItem - 1) / s.RowsPerItem));
        pool.For(
            items,
            ref s,
            Vec.Pick(s.V) switch
            {
                VecWidth.W512 => &CrossEntropyItem<V512>,
                VecWidth.W256 => &CrossEntropyItem<V256>,
                VecWidth.W128 => &CrossEntropyItem<V128>,
                _ => &CrossEntropyItem<V1>,
            });
    }

    // logits is (N,V), targets and losses are (N); backward overwrites logits with gradScale·(softmax − onehot)
    private static void CrossEntropyItem<V>(ref LossState s, int item)
        where V : unmanaged, IVec<V>
    {
        long first = (long)item * s.RowsPerItem, end = Math.Min(s.Rows, first + s.RowsPerItem);
        int v = s.V;
        for (long n = first; n < end; n++)
        {
            float* x = s.Logits + (n * v);
            int target = s.Targets[n];
            if (target < 0)
            {
                s.Losses[n] = 0f;
                if (s.Backward)
                {
                    new Span<float>(x, v).Clear();
                }

                continue;
            }

            float max = VecOps.Max<V>(x, v);
            float picked = x[target];
            float sum = VecOps.SumExp<V>(x, v, max, s.Backward ? x : null);
            s.Losses[n] = (float)(Math.Log(sum) + max - picked);
            if (s.Backward)
            {
                var row = new Span<float>(x, v);
                TensorPrimitives.Multiply(row, s.GradScale / sum, row);
                x[target] -= s.GradScale;
            }
        }
    }

    private struct LossState
    {
        public float* Losses;
        public float* Logits;
        public int* Targets;
        public long Rows;
        public int V;
        public int RowsPerItem;
        public bool Backward;
        public float GradScale;
    }
}
