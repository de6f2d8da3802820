using Engine.Core.Tensors;
using Xunit;

namespace Engine.Tests.Core;

public class ShapeTests
{
    [Fact]
    public void ElementCount_and_rows_follow_dimensions()
    {
        var s = new Shape(2, 3, 4);
        Assert.Equal(24, s.ElementCount);
        Assert.Equal(6, s.Rows);
        Assert.Equal(4, s.Last);
        Assert.Equal("[2, 3, 4]", s.ToString());
        Assert.Equal(new Shape(2, 3, 4), s);
        Assert.NotEqual(new Shape(2, 12), s);
    }

    [Fact]
    public void Negative_dimension_is_rejected() => Assert.Throws<ArgumentException>(() => new Shape(2, -1));

    [Fact]
    public void Views_outside_the_buffer_are_rejected()
    {
        using var buffer = new HostBuffer(64);
        var t = new Tensor(buffer, 0, new Shape(4, 4), DType.F32);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Slice(8, 3, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Tensor(buffer, 4, new Shape(16), DType.F32));
        Assert.Equal(12, t.Rows(1, 3).ElementCount);
    }
}
