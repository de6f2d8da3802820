using System.Runtime.CompilerServices;

namespace Engine.Core.Cpu;

/// <summary>
/// A persistent pool of worker threads for data-parallel loops, started once (no per-call thread start-up) and
/// allocation-free per call: the loop body is a function pointer over an unmanaged state struct on the caller's stack.
/// The calling thread takes part. Work items are independent, so which thread runs an item never changes a result.
/// </summary>
public sealed unsafe class WorkerPool : IDisposable
{
    [ThreadStatic]
    private static bool insideWorker;

    private readonly Thread[] threads;
    private readonly SemaphoreSlim wake = new(0);
    private readonly ManualResetEventSlim done = new(false, spinCount: 2000);
    private readonly Lock dispatch = new();
    private void* context;
    private delegate*<void*, int, void> body;
    private int count;
    private int next;
    private int pending;
    private volatile bool stopping;
    private Exception? failure;

    /// <summary>Starts <paramref name="threadCount"/> − 1 workers (the caller is the last one).</summary>
    public WorkerPool(int threadCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threadCount, 1);
        ThreadCount = threadCount;
        threads = new Thread[threadCount - 1];
        for (int i = 0; i < threads.Length; i++)
        {
            threads[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"engine-worker-{i + 1}" };
            threads[i].Start();
        }
    }

    /// <summary>Number of threads that run a loop, the caller included.</summary>
    public int ThreadCount { get; }

    /// <summary>Runs body(context, i) for every i in [0, count) and returns when all have finished.</summary>
    public void For(int itemCount, void* state, delegate*<void*, int, void> loopBody)
    {
        if (itemCount <= 0)
        {
            return;
        }

        if (itemCount == 1 || threads.Length == 0 || insideWorker)
        {
            for (int i = 0; i < itemCount; i++)
            {
                loopBody(state, i);
            }

            return;
        }

        lock (dispatch)
        {
            context = state;
            body = loopBody;
            count = itemCount;
            failure = null;
            int helpers = Math.Min(threads.Length, itemCount - 1);
            Volatile.Write(ref next, 0);
            Volatile.Write(ref pending, helpers);
            done.Reset();
            wake.Release(helpers);
            insideWorker = true;
            try
            {
                RunItems();
            }
            finally
            {
                insideWorker = false;
            }

            done.Wait();
            if (failure is not null)
            {
                throw new AggregateException("a parallel loop body failed", failure);
            }
        }
    }

    /// <summary>Typed form of the untyped <c>For</c> over a struct on the caller's stack.</summary>
    public void For<TState>(int itemCount, ref TState state, delegate*<ref TState, int, void> loopBody)
        where TState : unmanaged
    {
        For(itemCount, Unsafe.AsPointer(ref state), (delegate*<void*, int, void>)loopBody);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (stopping)
        {
            return;
        }

        stopping = true;

        // A one-thread pool has no workers to wake, and SemaphoreSlim rejects a release of zero.
        if (threads.Length > 0)
        {
            wake.Release(threads.Length);
        }

        foreach (var t in threads)
        {
            t.Join();
        }

        wake.Dispose();
        done.Dispose();
    }

    private void RunItems()
    {
        int n = count;
        while (true)
        {
            int i = Interlocked.Increment(ref next) - 1;
            if (i >= n)
            {
                return;
            }

            try
            {
                body(context, i);
            }
            catch (Exception e)
            {
                failure ??= e;
            }
        }
    }

    private void WorkerLoop()
    {
        insideWorker = true;
        while (true)
        {
            wake.Wait();
            if (stopping)
            {
                return;
            }

            RunItems();
            if (Interlocked.Decrement(ref pending) == 0)
            {
                done.Set();
            }
        }
    }
}
