// Compiled by RoslynCodeTaskFactory when the library builds; never part of the library itself.
// See docs/architecture.md ("Access to ML.NET's save/load plumbing").
using System;
using System.IO;
using System.Linq;
using Microsoft.Build.Framework;
using Mono.Cecil;

namespace MLNetFreqFusion.Build
{
    /// <summary>
    /// Writes compile-time copies of assemblies with every type and member made public. The library compiles against
    /// the copies and runs against the real assemblies, with IgnoresAccessChecksTo telling the runtime to allow it.
    /// </summary>
    public sealed class PublicizeAssemblies : Microsoft.Build.Utilities.Task
    {
        [Required] public ITaskItem[] Assemblies { get; set; } = Array.Empty<ITaskItem>();
        [Required] public string OutputDirectory { get; set; } = "";
        [Output] public ITaskItem[] Publicized { get; set; } = Array.Empty<ITaskItem>();

        public override bool Execute()
        {
            Directory.CreateDirectory(OutputDirectory);
            Publicized = Assemblies.Select(item =>
            {
                string source = item.ItemSpec;
                string target = Path.Combine(OutputDirectory, Path.GetFileName(source));
                if (!File.Exists(target) || File.GetLastWriteTimeUtc(target) < File.GetLastWriteTimeUtc(source))
                {
                    var resolver = new DefaultAssemblyResolver();
                    resolver.AddSearchDirectory(Path.GetDirectoryName(source));
                    using (var module = ModuleDefinition.ReadModule(source, new ReaderParameters { AssemblyResolver = resolver }))
                    {
                        foreach (var type in module.GetTypes())
                            Publicize(type);
                        module.Write(target);
                    }
                }
                var output = new Microsoft.Build.Utilities.TaskItem(target);
                item.CopyMetadataTo(output);
                return (ITaskItem)output;
            }).ToArray();
            return true;
        }

        static void Publicize(TypeDefinition type)
        {
            if (type.IsNested) type.IsNestedPublic = true; else type.IsPublic = true;
            foreach (var method in type.Methods)
                method.IsPublic = true;
            foreach (var field in type.Fields)
            {
                // Making an event's backing field public would clash with the event of the same name.
                if (type.Events.Any(e => e.Name == field.Name)) continue;
                field.IsPublic = true;
            }
        }
    }
}
