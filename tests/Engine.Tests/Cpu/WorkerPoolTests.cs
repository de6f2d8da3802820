using Engine.Core.Cpu;
using Xunit;

namespace Engine.Tests.Cpu;

public unsafe class WorkerPoolTests
{
    [Theory]
    [InlineData(1, 0)]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(2, 1000)]
    [InlineData(3, 7)]
    [InlineData(4, 10_000)]
    public void Every_item_runs_exactly_once(int threads, int items)
    {
        using var pool = new WorkerPool(threads);
        var counts = new int[items];
        fixed (int* p = counts)
        {
            for (int round = 0; round < 3; round++)
            {
                var state = new CountState { Counts = p };
                pool.For(items, ref state, &Count);
            }
        }

        Assert.All(counts, c => Assert.Equal(3, c));
    }

    [Fact]
    public void A_failing_body_surfaces_as_an_exception_and_the_pool_keeps_working()
    {
        using var pool = new WorkerPool(2);
        var state = new CountState();
        Assert.Throws<AggregateException>(() => pool.For(100, ref state, &Fail));
        var counts = new int[50];
        fixed (int* p = counts)
        {
            var ok = new CountState { Counts = p };
            pool.For(50, ref ok, &Count);
        }

        Assert.All(counts, c => Assert.Equal(1, c));
    }

    private static void Count(ref CountState s, int i) => Interlocked.Increment(ref s.Counts[i]);

    private static void Fail(ref CountState s, int i)
    {
        if (i == 42)
        {
            throw new InvalidOperationException("item 42");
        }
    }

    private struct CountState
    {
        public int* Counts;
    }
}
