using SemanticSegmentation.WebApi;

// dotnet run --project samples/SemanticSegmentation.WebApi -- --model path/to/model.zip --urls http://127.0.0.1:5000
try
{
    var app = SegmentationApi.Build(args);
    app.Run();
    return 0;
}
catch (SegmentationStartupException e)
{
    // A missing or unreadable model is the one expected startup failure: say what to do, not a stack trace.
    Console.Error.WriteLine(e.Message);
    return 1;
}
