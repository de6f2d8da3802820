using Engine.Core.Cpu.Attention;

namespace Engine.Core.Cpu.Gemm;

/// <summary>
/// out[m,j] = in[m,:]·W[j,:] + bias[j] for a handful of rows m and W stored [OC,C] (OutIn): each work item owns a block
/// of output columns and reads each of its weight rows once from memory, using it for every input row while it is in
/// L1. Each output is one dot product in a fixed order, so results do not depend on the thread count.
/// </summary>
internal static unsafe class GemvRows
{
    /// <summary>Most input rows served here; more go to the tiled GEMM.</summary>
    internal const int MaxRows = 4;

    /// <summary>Output columns per work item.</summary>
    internal const int ColumnsPerItem = 64;

    internal struct State
    {
        public float* Input;
        public float* Weight;
        public float* Bias;
        public float* Output;
        public int Rows;
        public int Columns;
        public int Depth;
    }

    internal static void Item(ref State s, int index)
    {
        int j0 = index * ColumnsPerItem, j1 = Math.Min(s.Columns, j0 + ColumnsPerItem), k = s.Depth;
        for (int j = j0; j < j1; j++)
        {
            float* w = s.Weight + ((long)j * k);
            float b = s.Bias == null ? 0f : s.Bias[j];
            for (int m = 0; m < s.Rows; m++)
            {
                s.Output[((long)m * s.Columns) + j] = AttentionSimd.Dot(s.Input + ((long)m * k), w, k) + b;
            }
        }
    }
}
