// Every struct crossing the boundary is blittable; with runtime marshalling off, [LibraryImport] passes them as they
// are and the compiler rejects anything that would need a marshaller.
[assembly: System.Runtime.CompilerServices.DisableRuntimeMarshalling]
